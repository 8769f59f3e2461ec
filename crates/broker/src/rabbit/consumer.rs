//! The consuming side: deliveries from one job queue and how each is settled.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use lapin::Connection;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;

use super::topology::{Names, connect, declare, declare_queue};
use crate::delivery::{BrokerError, Delivery, Receipt};
use ferro_tasks::TaskEnvelope;

/// A RabbitMQ delivery, settled by its tag on its channel.
struct RabbitReceipt(lapin::message::Delivery);

impl Receipt for RabbitReceipt {
    fn ack(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(ack(&self.0))
    }

    fn requeue(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(requeue(&self.0))
    }

    fn dead_letter(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(dead_letter(&self.0))
    }
}

async fn ack(inner: &lapin::message::Delivery) -> Result<(), BrokerError> {
    inner.ack(BasicAckOptions::default()).await?;
    Ok(())
}

async fn requeue(inner: &lapin::message::Delivery) -> Result<(), BrokerError> {
    inner
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await?;
    Ok(())
}

async fn dead_letter(inner: &lapin::message::Delivery) -> Result<(), BrokerError> {
    inner.reject(BasicRejectOptions { requeue: false }).await?;
    Ok(())
}

/// Deliveries from one job queue; reconnects with backoff by itself.
pub struct RabbitConsumer {
    pub(super) url: String,
    pub(super) names: Names,
    pub(super) queue: String,
    pub(super) prefetch: u16,
    pub(super) tag: String,
    pub(super) state: Option<(Connection, lapin::Consumer)>,
}

impl RabbitConsumer {
    async fn open(&self) -> Result<(Connection, lapin::Consumer), BrokerError> {
        let conn = connect(&self.url, "ferrostack-consumer").await?;
        let channel = conn.create_channel().await?;
        declare(&channel, &self.names).await?;
        declare_queue(&channel, &self.names, &self.queue).await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                self.names.queue(&self.queue).as_str().into(),
                self.tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((conn, consumer))
    }

    /// The next delivery. Waits (reconnecting with backoff from 100 ms to 5 s,
    /// logging each failure) while the broker is away.
    pub async fn next(&mut self) -> Delivery {
        let mut delay = Duration::from_millis(100);
        let mut lost = false;
        loop {
            if self.state.is_none() {
                match self.open().await {
                    Ok(state) => {
                        if lost {
                            tracing::info!(queue = %self.queue, "consumer reconnected to the broker");
                        }
                        self.state = Some(state);
                        delay = Duration::from_millis(100);
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "broker unavailable");
                        lost = true;
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            let (_, consumer) = self.state.as_mut().expect("just opened");
            match consumer.next().await {
                Some(Ok(inner)) => {
                    return Delivery::new(
                        TaskEnvelope::from_bytes(&inner.data),
                        inner.redelivered,
                        Box::new(RabbitReceipt(inner)),
                    );
                }
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "consumer lost the broker; reconnecting");
                    self.state = None;
                    lost = true;
                }
                None => {
                    tracing::warn!("consumer cancelled by the broker; reconnecting");
                    self.state = None;
                    lost = true;
                }
            }
        }
    }

    /// Stops consuming; unacknowledged deliveries go back to the queue.
    pub async fn close(&mut self) {
        if let Some((conn, _)) = self.state.take() {
            let _ = conn.close(200, "worker stopping".into()).await;
        }
    }
}
