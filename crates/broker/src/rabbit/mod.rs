use std::collections::HashSet;
use std::time::Duration;

use lapin::Confirmation;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::Mutex;

use crate::delivery::{BrokerError, Envelope};
use crate::known::KnownQueues;
use ferro_tasks::TaskEnvelope;

mod consumer;
mod topology;

pub use consumer::RabbitConsumer;
pub use topology::RETRY_DELAYS;
use topology::{Names, connect, declare, declare_queue};

/// How long a publish waits for the broker's confirms before it gives the
/// connection up as lost.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

fn no_confirm() -> lapin::Error {
    lapin::Error::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "no confirm from the broker within {} s",
            CONFIRM_TIMEOUT.as_secs()
        ),
    ))
}

fn properties(envelope: &TaskEnvelope) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_priority(envelope.priority)
        .with_content_type("application/json".into())
        .with_message_id(envelope.job_id.to_string().into())
}

/// Publishes envelopes with confirms, reconnecting as needed.
pub struct RabbitBroker {
    url: String,
    names: Names,
    publisher: Mutex<Publisher>,
    /// The job queues this handle knows of: those it was told of
    /// ([`RabbitBroker::with_queues`]) and those it published to.
    queues: KnownQueues,
}

/// The publishing connection, and when to try again after failing to open
/// one: 100 ms after the first failure, doubling up to 5 s. Meanwhile a
/// publish fails at once (the outbox relay sends the job later) instead of
/// every request trying to connect to a broker that is away.
#[derive(Default)]
struct Publisher {
    open: Option<(Connection, Channel)>,
    delay: Option<Duration>,
    retry_at: Option<std::time::Instant>,
    /// The broker was lost (or never reached) since the last connection.
    lost: bool,
    /// The job queues declared on this connection: a queue is declared
    /// before its first message, which the exchange would otherwise drop.
    declared: HashSet<String>,
}

const PUBLISHER_FIRST_RETRY: Duration = Duration::from_millis(100);
const PUBLISHER_LONGEST_RETRY: Duration = Duration::from_secs(5);

impl RabbitBroker {
    /// A broker handle that connects on first use (and again after losing
    /// the broker), so a service can start while RabbitMQ is still down.
    pub fn new(url: &str, prefix: &str) -> Self {
        Self {
            url: url.to_owned(),
            names: Names::new(prefix),
            publisher: Mutex::new(Publisher::default()),
            queues: KnownQueues::default(),
        }
    }

    /// Adds `queues` to the job queues this handle knows of (for depths
    /// and deleting the topology); the default queue is always one of them.
    pub fn with_queues(self, queues: &[String]) -> Self {
        for queue in queues {
            self.queues.note(queue);
        }
        self
    }

    /// Connects and declares the topology for `prefix` now.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BrokerError> {
        let broker = Self::new(url, prefix);
        broker.channel().await?;
        Ok(broker)
    }

    async fn open(&self) -> Result<(Connection, Channel), BrokerError> {
        let conn = connect(&self.url, "ferrostack-publisher").await?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        declare(&channel, &self.names).await?;
        Ok((conn, channel))
    }

    /// The publishing channel, with job queue `queue` (if any) declared on it.
    async fn channel_for(&self, queue: Option<&str>) -> Result<Channel, BrokerError> {
        let channel = self.channel().await?;
        let Some(queue) = queue else {
            return Ok(channel);
        };
        let mut publisher = self.publisher.lock().await;
        if !publisher.declared.contains(queue) {
            declare_queue(&channel, &self.names, queue).await?;
            publisher.declared.insert(queue.to_owned());
            self.queues.note(queue);
        }
        Ok(channel)
    }

    async fn channel(&self) -> Result<Channel, BrokerError> {
        let mut publisher = self.publisher.lock().await;
        if let Some((conn, channel)) = publisher.open.as_ref() {
            if conn.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
            tracing::warn!("publisher lost the broker; reconnecting");
            publisher.open = None;
            publisher.lost = true;
        }
        if let Some(at) = publisher.retry_at {
            let now = std::time::Instant::now();
            if now < at {
                return Err(BrokerError::Unavailable(format!(
                    "the broker is unavailable; the publisher tries again in {} ms",
                    (at - now).as_millis()
                )));
            }
        }
        match self.open().await {
            Ok((conn, channel)) => {
                if publisher.lost {
                    tracing::info!("publisher reconnected to the broker");
                }
                *publisher = Publisher {
                    open: Some((conn, channel.clone())),
                    ..Publisher::default()
                };
                Ok(channel)
            }
            Err(err) => {
                let delay = publisher.delay.map_or(PUBLISHER_FIRST_RETRY, |d| {
                    (d * 2).min(PUBLISHER_LONGEST_RETRY)
                });
                publisher.delay = Some(delay);
                publisher.retry_at = Some(std::time::Instant::now() + delay);
                publisher.lost = true;
                tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "publisher cannot reach the broker");
                Err(err)
            }
        }
    }

    /// Drops a connection that failed a publish; the next publish opens
    /// another at once.
    async fn forget(&self) {
        let mut publisher = self.publisher.lock().await;
        publisher.open = None;
        publisher.lost = true;
    }

    pub async fn check(&self) -> Result<(), BrokerError> {
        self.channel().await.map(|_| ())
    }

    async fn publish_to(
        &self,
        exchange: &str,
        routing_key: &str,
        envelope: &TaskEnvelope,
    ) -> Result<(), BrokerError> {
        let payload = envelope.to_bytes();
        let channel = self.channel_for(Some(&envelope.queue)).await?;
        let sent = tokio::time::timeout(CONFIRM_TIMEOUT, async {
            let confirm = channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    &payload,
                    properties(envelope),
                )
                .await?
                .await?;
            Ok::<_, lapin::Error>(confirm)
        })
        .await
        .unwrap_or_else(|_| Err(no_confirm()));
        match sent {
            Ok(Confirmation::Ack(_)) => Ok(()),
            Ok(Confirmation::Nack(_)) => Err(BrokerError::Nacked),
            Ok(Confirmation::NotRequested) => Ok(()),
            Err(err) => {
                self.forget().await;
                Err(BrokerError::Unavailable(err.to_string()))
            }
        }
    }

    /// Publishes for immediate delivery; returns once the broker confirmed.
    pub async fn publish(&self, envelope: &TaskEnvelope) -> Result<(), BrokerError> {
        self.publish_to(&self.names.exchange, &envelope.queue, envelope)
            .await
    }

    /// Publishes every envelope for immediate delivery, then awaits the
    /// broker's confirms together (one round trip's wait for the batch);
    /// one answer per envelope, in order.
    pub async fn publish_many(&self, envelopes: &[&TaskEnvelope]) -> Vec<Result<(), BrokerError>> {
        let channel = async {
            let mut queues: Vec<&str> = envelopes.iter().map(|e| e.queue.as_str()).collect();
            queues.sort_unstable();
            queues.dedup();
            let mut channel = self.channel_for(None).await?;
            for queue in queues {
                channel = self.channel_for(Some(queue)).await?;
            }
            Ok::<_, BrokerError>(channel)
        }
        .await;
        let channel = match channel {
            Ok(channel) => channel,
            Err(err) => {
                let text = err.to_string();
                return envelopes
                    .iter()
                    .map(|_| Err(BrokerError::Unavailable(text.clone())))
                    .collect();
            }
        };
        let mut confirms = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let sent = channel
                .basic_publish(
                    self.names.exchange.as_str().into(),
                    envelope.queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &envelope.to_bytes(),
                    properties(envelope),
                )
                .await;
            confirms.push(sent);
        }
        let mut answers = Vec::with_capacity(confirms.len());
        let mut lost = false;
        let until = tokio::time::Instant::now() + CONFIRM_TIMEOUT;
        for sent in confirms {
            let confirmed = match sent {
                Ok(confirm) => tokio::time::timeout_at(until, confirm)
                    .await
                    .unwrap_or_else(|_| Err(no_confirm())),
                Err(err) => Err(err),
            };
            answers.push(match confirmed {
                Ok(Confirmation::Ack(_) | Confirmation::NotRequested) => Ok(()),
                Ok(Confirmation::Nack(_)) => Err(BrokerError::Nacked),
                Err(err) => {
                    lost = true;
                    Err(BrokerError::Unavailable(err.to_string()))
                }
            });
        }
        if lost {
            self.forget().await;
        }
        answers
    }

    /// Publishes to come back after about `delay` (rounded up to a retry queue).
    pub async fn publish_delayed(
        &self,
        envelope: &TaskEnvelope,
        delay: Duration,
    ) -> Result<(), BrokerError> {
        let secs = RETRY_DELAYS
            .into_iter()
            .find(|s| *s >= delay.as_secs())
            .unwrap_or(RETRY_DELAYS[RETRY_DELAYS.len() - 1]);
        // The default exchange routes by queue name.
        self.publish_to("", &self.names.retry_queue(&envelope.queue, secs), envelope)
            .await
    }

    /// A consumer of job queue `queue` with `prefetch` unacknowledged
    /// deliveries at most.
    pub fn consumer(&self, queue: &str, prefetch: u16, tag: &str) -> RabbitConsumer {
        self.queues.note(queue);
        RabbitConsumer {
            url: self.url.clone(),
            names: self.names.clone(),
            queue: queue.to_owned(),
            prefetch,
            tag: tag.to_owned(),
            state: None,
        }
    }

    /// How many messages wait in job queue `queue` (0 for a queue not
    /// declared yet).
    pub async fn depth(&self, queue: &str) -> Result<u32, BrokerError> {
        let channel = self.channel_for(Some(queue)).await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let main = channel
            .queue_declare(
                self.names.queue(queue).as_str().into(),
                passive,
                FieldTable::default(),
            )
            .await?;
        Ok(main.message_count())
    }

    /// How many messages wait in all known job queues, and in the dead letters.
    pub async fn depths(&self) -> Result<(u32, u32), BrokerError> {
        let mut waiting = 0;
        for queue in self.queues.list() {
            waiting += self.depth(&queue).await?;
        }
        let channel = self.channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let dead = channel
            .queue_declare(
                self.names.dead_queue.as_str().into(),
                passive,
                FieldTable::default(),
            )
            .await?;
        Ok((waiting, dead.message_count()))
    }

    /// Takes one message off the dead-letter queue (operators, tests).
    pub async fn take_dead_letter(&self) -> Result<Option<Envelope>, BrokerError> {
        let channel = self.channel().await?;
        let got = channel
            .basic_get(
                self.names.dead_queue.as_str().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await?;
        Ok(got.map(|m| TaskEnvelope::from_bytes(&m.delivery.data)))
    }

    /// Deletes every exchange and queue of this prefix that this handle
    /// knows of (tests, `reset`).
    pub async fn delete_topology(&self) -> Result<(), BrokerError> {
        let channel = self.channel().await?;
        let mut queues = vec![self.names.dead_queue.clone()];
        for queue in self.queues.list() {
            queues.push(self.names.queue(&queue));
            queues.extend(
                RETRY_DELAYS
                    .iter()
                    .map(|s| self.names.retry_queue(&queue, *s)),
            );
        }
        for q in queues {
            channel
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        for e in [&self.names.exchange, &self.names.dead_exchange] {
            channel
                .exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default())
                .await?;
        }
        self.publisher.lock().await.declared.clear();
        Ok(())
    }
}
