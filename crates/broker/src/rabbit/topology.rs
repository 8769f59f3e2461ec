//! The RabbitMQ topology of a prefix (exchanges, a queue per job queue,
//! their retry queues, the dead-letter queue) and how a connection to it is opened: what the
//! publisher and the consumer share.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::delivery::BrokerError;

/// The delays (seconds) of the retry queues; a retry waits in the shortest
/// one that is at least as long as the delay asked for.
pub const RETRY_DELAYS: [u64; 5] = [1, 5, 30, 120, 600];

/// The `x-max-priority` of every jobs queue: priorities 0 to 9.
const MAX_PRIORITY: u8 = ferro_tasks::queues::MAX_PRIORITY;

#[derive(Clone)]
pub(super) struct Names {
    pub(super) exchange: String,
    pub(super) dead_exchange: String,
    pub(super) dead_queue: String,
    prefix: String,
}

impl Names {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            exchange: format!("{prefix}.jobs"),
            dead_exchange: format!("{prefix}.jobs.dead"),
            dead_queue: format!("{prefix}.jobs.dead"),
            prefix: prefix.to_owned(),
        }
    }

    /// The RabbitMQ queue of job queue `queue`; bound to the exchange with
    /// `queue` as its routing key.
    pub(super) fn queue(&self, queue: &str) -> String {
        format!("{}.q.{queue}", self.prefix)
    }

    pub(super) fn retry_queue(&self, queue: &str, secs: u64) -> String {
        format!("{}.retry.{secs}s", self.queue(queue))
    }
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// The largest AMQP frame we ask for, unless `BROKER_URL` sets `frame_max`.
/// lapin keeps 32 frames of buffer each way per connection: at RabbitMQ's
/// default of 128 KiB that is 8 MiB a connection, at 16 KiB 1 MiB. Task
/// envelopes are well under 1 KiB; bigger messages span several frames.
const FRAME_MAX: u32 = 16 * 1024;

/// How long opening a connection (TCP, TLS, the AMQP handshake) may take: a
/// node that accepts connections but does not answer (starting, stopping,
/// overloaded) must not hold the publisher, and every caller waiting on it.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn connect(url: &str, name: &str) -> Result<Connection, BrokerError> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let mut uri: lapin::uri::AMQPUri = url
        .parse()
        .map_err(|e: String| BrokerError::Unavailable(format!("BROKER_URL: {e}")))?;
    if uri.query.frame_max.is_none() {
        uri.query.frame_max = Some(FRAME_MAX);
    }
    match tokio::time::timeout(OPEN_TIMEOUT, Connection::connect_uri(uri, props)).await {
        Ok(opened) => opened.map_err(|e| BrokerError::Unavailable(e.to_string())),
        Err(_) => Err(BrokerError::Unavailable(format!(
            "the broker did not answer within {} s",
            OPEN_TIMEOUT.as_secs()
        ))),
    }
}

/// Declares the exchanges and the dead-letter queue; idempotent.
pub(super) async fn declare(channel: &Channel, names: &Names) -> Result<(), BrokerError> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            names.exchange.as_str().into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            names.dead_exchange.as_str().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            names.dead_queue.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            names.dead_queue.as_str().into(),
            names.dead_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Declares job queue `queue` (a priority queue whose rejected messages go
/// to the dead letters), its binding, and its retry queues; idempotent.
pub(super) async fn declare_queue(
    channel: &Channel,
    names: &Names,
    queue: &str,
) -> Result<(), BrokerError> {
    let main = names.queue(queue);
    channel
        .queue_declare(
            main.as_str().into(),
            QueueDeclareOptions::durable(),
            table(&[
                ("x-dead-letter-exchange", text(&names.dead_exchange)),
                ("x-max-priority", AMQPValue::LongUInt(MAX_PRIORITY.into())),
            ]),
        )
        .await?;
    channel
        .queue_bind(
            main.as_str().into(),
            names.exchange.as_str().into(),
            queue.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    for secs in RETRY_DELAYS {
        channel
            .queue_declare(
                names.retry_queue(queue, secs).as_str().into(),
                QueueDeclareOptions::durable(),
                table(&[
                    ("x-message-ttl", AMQPValue::LongUInt((secs * 1000) as u32)),
                    ("x-dead-letter-exchange", text(&names.exchange)),
                    ("x-dead-letter-routing-key", text(queue)),
                ]),
            )
            .await?;
    }
    Ok(())
}
