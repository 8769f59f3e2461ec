use std::time::Duration;

use lapin::Confirmation;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;

use crate::delivery::{BrokerError, Envelope};
use ferro_tasks::TaskEnvelope;

mod consumer;
pub use consumer::RabbitConsumer;

/// The delays (seconds) of the retry queues; a retry waits in the shortest
/// one that is at least as long as the delay asked for.
pub const RETRY_DELAYS: [u64; 5] = [1, 5, 30, 120, 600];

const ROUTING_KEY: &str = "jobs";

#[derive(Clone)]
struct Names {
    exchange: String,
    queue: String,
    dead_exchange: String,
    dead_queue: String,
}

impl Names {
    fn new(prefix: &str) -> Self {
        Self {
            exchange: format!("{prefix}.jobs"),
            queue: format!("{prefix}.jobs"),
            dead_exchange: format!("{prefix}.jobs.dead"),
            dead_queue: format!("{prefix}.jobs.dead"),
        }
    }

    fn retry_queue(&self, secs: u64) -> String {
        format!("{}.retry.{secs}s", self.queue)
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

async fn connect(url: &str, name: &str) -> Result<Connection, BrokerError> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let mut uri: lapin::uri::AMQPUri = url
        .parse()
        .map_err(|e: String| BrokerError::Unavailable(format!("BROKER_URL: {e}")))?;
    if uri.query.frame_max.is_none() {
        uri.query.frame_max = Some(FRAME_MAX);
    }
    Connection::connect_uri(uri, props)
        .await
        .map_err(|e| BrokerError::Unavailable(e.to_string()))
}

/// Declares every exchange and queue; idempotent.
async fn declare(channel: &Channel, names: &Names) -> Result<(), BrokerError> {
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
            names.queue.as_str().into(),
            QueueDeclareOptions::durable(),
            table(&[("x-dead-letter-exchange", text(&names.dead_exchange))]),
        )
        .await?;
    channel
        .queue_bind(
            names.queue.as_str().into(),
            names.exchange.as_str().into(),
            ROUTING_KEY.into(),
            QueueBindOptions::default(),
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
    for secs in RETRY_DELAYS {
        channel
            .queue_declare(
                names.retry_queue(secs).as_str().into(),
                QueueDeclareOptions::durable(),
                table(&[
                    ("x-message-ttl", AMQPValue::LongUInt((secs * 1000) as u32)),
                    ("x-dead-letter-exchange", text(&names.exchange)),
                    ("x-dead-letter-routing-key", text(ROUTING_KEY)),
                ]),
            )
            .await?;
    }
    Ok(())
}

fn properties(envelope: &TaskEnvelope) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(envelope.job_id.to_string().into())
}

/// Publishes envelopes with confirms, reconnecting as needed.
pub struct RabbitBroker {
    url: String,
    names: Names,
    publisher: Mutex<Publisher>,
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
        }
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
        let channel = self.channel().await?;
        let sent = async {
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
        }
        .await;
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
        self.publish_to(&self.names.exchange, ROUTING_KEY, envelope)
            .await
    }

    /// Publishes every envelope for immediate delivery, then awaits the
    /// broker's confirms together (one round trip's wait for the batch);
    /// one answer per envelope, in order.
    pub async fn publish_many(&self, envelopes: &[&TaskEnvelope]) -> Vec<Result<(), BrokerError>> {
        let channel = match self.channel().await {
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
                    ROUTING_KEY.into(),
                    BasicPublishOptions::default(),
                    &envelope.to_bytes(),
                    properties(envelope),
                )
                .await;
            confirms.push(sent);
        }
        let mut answers = Vec::with_capacity(confirms.len());
        let mut lost = false;
        for sent in confirms {
            let confirmed = match sent {
                Ok(confirm) => confirm.await,
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
        self.publish_to("", &self.names.retry_queue(secs), envelope)
            .await
    }

    /// A consumer with `prefetch` unacknowledged deliveries at most.
    pub fn consumer(&self, prefetch: u16, tag: &str) -> RabbitConsumer {
        RabbitConsumer {
            url: self.url.clone(),
            names: self.names.clone(),
            prefetch,
            tag: tag.to_owned(),
            state: None,
        }
    }

    /// How many messages wait in the main and the dead-letter queue.
    pub async fn depths(&self) -> Result<(u32, u32), BrokerError> {
        let channel = self.channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let main = channel
            .queue_declare(
                self.names.queue.as_str().into(),
                passive,
                FieldTable::default(),
            )
            .await?;
        let dead = channel
            .queue_declare(
                self.names.dead_queue.as_str().into(),
                passive,
                FieldTable::default(),
            )
            .await?;
        Ok((main.message_count(), dead.message_count()))
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

    /// Deletes every exchange and queue of this prefix (tests, `reset`).
    pub async fn delete_topology(&self) -> Result<(), BrokerError> {
        let channel = self.channel().await?;
        let mut queues = vec![self.names.queue.clone(), self.names.dead_queue.clone()];
        queues.extend(RETRY_DELAYS.iter().map(|s| self.names.retry_queue(*s)));
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
        Ok(())
    }
}
