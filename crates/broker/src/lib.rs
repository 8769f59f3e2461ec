//! The task broker: the one interface the api, the worker and the scheduler
//! use to move [`TaskEnvelope`]s.
//!
//! Every envelope names its job queue (`queue`, configured in
//! `deploy/queues.json`) and its `priority` (0 to 9, higher first).
//!
//! RabbitMQ backend (lapin), per name prefix `P` (so that stacks and tests can
//! share one RabbitMQ):
//!
//! - exchange `P.jobs` (direct, durable); job queue `Q` is RabbitMQ queue
//!   `P.q.Q` (durable, `x-max-priority` 9), bound with routing key `Q`, and
//!   declared by a publisher before its first message; messages are
//!   persistent, carry their priority, and every publish waits for the
//!   broker's confirm;
//! - dead letters: every job queue names `P.jobs.dead` (fanout) as its
//!   dead-letter exchange, bound to queue `P.jobs.dead`; a rejected delivery
//!   goes there;
//! - delayed retries: queues `P.q.Q.retry.{N}s` with a fixed TTL of N
//!   seconds whose dead letters go back to `P.jobs` with routing key `Q`.
//!   One queue per delay avoids head-of-line blocking, since RabbitMQ
//!   expires messages only at the head of a queue;
//! - consumers ack manually, with a prefetch equal to the queue's
//!   concurrency in that worker.
//!
//! RabbitMQ's publisher and consumer reconnect with backoff after the broker
//! goes away, and log when they do (a publish during the publisher's backoff
//! fails at once; the outbox relay sends it later). On Redis the consumer
//! does the same, and the publisher's pooled connections reconnect by
//! themselves.
//!
//! The outbox relay (in the worker) publishes what transactions enqueued.
//!
//! Redis Streams backend ([`RedisBroker`]): see its module for the keys,
//! the consumer group, visibility timeout and dead-letter stream.
//!
//! [`Broker`], [`Consumer`] and [`Delivery`] are the one interface over both;
//! `BROKER_URL`'s scheme picks the backend ([`Broker::from_config`]).

mod delivery;
mod gate;
mod known;
mod merged;
mod rabbit;
mod redis_streams;

use std::time::Duration;

use futures_util::future::BoxFuture;

use delivery::Source;
pub use delivery::{BrokerError, Delivery, Envelope};
pub use gate::PauseGate;
pub use merged::MergedConsumer;
pub use rabbit::{RETRY_DELAYS, RabbitBroker, RabbitConsumer};
pub use redis_streams::{RedisBroker, RedisConsumer};

use ferro_config::{BrokerConfig, BrokerKind};
use ferro_tasks::TaskEnvelope;

/// The task broker `BROKER_URL` names.
// One per process: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Broker {
    RabbitMq(RabbitBroker),
    RedisStreams(RedisBroker),
}

impl Broker {
    /// The broker of `config`; connects on first use (and again after
    /// losing the broker), so a service can start while the broker is down.
    pub fn from_config(config: &BrokerConfig) -> Result<Self, BrokerError> {
        Ok(match config.kind {
            BrokerKind::RabbitMq => {
                Broker::RabbitMq(RabbitBroker::new(config.url.expose(), &config.prefix))
            }
            BrokerKind::RedisStreams => Broker::RedisStreams(RedisBroker::new(
                config.url.expose(),
                &config.prefix,
                config.visibility_timeout,
            )?),
        })
    }

    /// Adds `queues` to the job queues this handle knows of: the ones its
    /// depths count and [`Broker::delete_topology`] deletes, besides those
    /// it published to or consumed.
    pub fn with_queues(self, queues: &[String]) -> Self {
        match self {
            Broker::RabbitMq(b) => Broker::RabbitMq(b.with_queues(queues)),
            Broker::RedisStreams(b) => Broker::RedisStreams(b.with_queues(queues)),
        }
    }

    pub fn kind(&self) -> BrokerKind {
        match self {
            Broker::RabbitMq(_) => BrokerKind::RabbitMq,
            Broker::RedisStreams(_) => BrokerKind::RedisStreams,
        }
    }

    /// Publishes for immediate delivery; returns once the broker has it
    /// (RabbitMQ: confirmed; Redis: the XADD answered).
    pub async fn publish(&self, envelope: &TaskEnvelope) -> Result<(), BrokerError> {
        match self {
            Broker::RabbitMq(b) => b.publish(envelope).await,
            Broker::RedisStreams(b) => b.publish(envelope).await,
        }
    }

    /// Publishes every envelope for immediate delivery, the broker's
    /// acknowledgements awaited together; one answer per envelope, in order.
    pub async fn publish_many(&self, envelopes: &[&TaskEnvelope]) -> Vec<Result<(), BrokerError>> {
        match self {
            Broker::RabbitMq(b) => b.publish_many(envelopes).await,
            Broker::RedisStreams(b) => b.publish_many(envelopes).await,
        }
    }

    /// Publishes to be delivered after about `delay`.
    pub async fn publish_delayed(
        &self,
        envelope: &TaskEnvelope,
        delay: Duration,
    ) -> Result<(), BrokerError> {
        match self {
            Broker::RabbitMq(b) => b.publish_delayed(envelope, delay).await,
            Broker::RedisStreams(b) => b.publish_delayed(envelope, delay).await,
        }
    }

    /// A consumer of the default queue named `name` with at most
    /// `prefetch` unsettled deliveries.
    pub fn consumer(&self, prefetch: u16, name: &str) -> Consumer {
        self.queue_consumer(ferro_tasks::queues::DEFAULT_QUEUE, prefetch, name)
    }

    /// A consumer of job queue `queue`.
    pub fn queue_consumer(&self, queue: &str, prefetch: u16, name: &str) -> Consumer {
        match self {
            Broker::RabbitMq(b) => Consumer::RabbitMq(b.consumer(queue, prefetch, name)),
            Broker::RedisStreams(b) => Consumer::RedisStreams(b.consumer(queue, prefetch, name)),
        }
    }

    /// A consumer of each job queue in `queues`, with its own prefetch,
    /// behind one `next`. With a `gate`, a paused queue's deliveries are
    /// not taken until it is resumed.
    pub fn consumer_of(
        &self,
        queues: &[(String, u16)],
        name: &str,
        gate: Option<PauseGate>,
    ) -> Consumer {
        if let [(queue, prefetch)] = queues {
            let consumer = self.queue_consumer(queue, *prefetch, name);
            return match gate {
                Some(gate) => Consumer::Gated(Box::new(consumer), gate, queue.clone()),
                None => consumer,
            };
        }
        Consumer::Merged(MergedConsumer::new(
            queues
                .iter()
                .map(|(queue, prefetch)| -> (String, Box<dyn Source>) {
                    let source: Box<dyn Source> = match self {
                        Broker::RabbitMq(b) => Box::new(b.consumer(queue, *prefetch, name)),
                        Broker::RedisStreams(b) => Box::new(b.consumer(queue, *prefetch, name)),
                    };
                    (queue.clone(), source)
                })
                .collect(),
            gate,
        ))
    }

    /// Messages waiting (on Redis: waiting or in flight) in job queue `queue`.
    pub async fn depth(&self, queue: &str) -> Result<u32, BrokerError> {
        match self {
            Broker::RabbitMq(b) => b.depth(queue).await,
            Broker::RedisStreams(b) => b.depth(queue).await,
        }
    }

    /// Whether this client can use the broker now: for RabbitMQ its
    /// publishing connection is open (logged in, vhost opened, topology
    /// declared; reconnected if it was lost), for Redis Streams a PING.
    pub async fn check(&self) -> Result<(), BrokerError> {
        match self {
            Broker::RabbitMq(b) => b.check().await,
            Broker::RedisStreams(b) => b.check().await,
        }
    }

    /// Messages waiting in the known job queues, and dead letters.
    pub async fn depths(&self) -> Result<(u32, u32), BrokerError> {
        match self {
            Broker::RabbitMq(b) => b.depths().await,
            Broker::RedisStreams(b) => b.depths().await,
        }
    }

    /// Takes one dead letter off (operators, tests).
    pub async fn take_dead_letter(&self) -> Result<Option<Envelope>, BrokerError> {
        match self {
            Broker::RabbitMq(b) => b.take_dead_letter().await,
            Broker::RedisStreams(b) => b.take_dead_letter().await,
        }
    }

    /// Deletes every queue, exchange or key of this prefix (tests, resets).
    pub async fn delete_topology(&self) -> Result<(), BrokerError> {
        match self {
            Broker::RabbitMq(b) => b.delete_topology().await,
            Broker::RedisStreams(b) => b.delete_topology().await,
        }
    }
}

/// Deliveries for one worker process.
#[allow(clippy::large_enum_variant)]
pub enum Consumer {
    RabbitMq(RabbitConsumer),
    RedisStreams(RedisConsumer),
    Merged(MergedConsumer),
    /// One queue's consumer that waits while its queue is paused.
    Gated(Box<Consumer>, PauseGate, String),
}

impl Consumer {
    /// The next delivery; waits, reconnecting with backoff, while the broker is away.
    pub async fn next(&mut self) -> Delivery {
        match self {
            Consumer::RabbitMq(c) => c.next().await,
            Consumer::RedisStreams(c) => c.next().await,
            Consumer::Merged(c) => c.next().await,
            Consumer::Gated(c, gate, queue) => {
                gate.wait_open(queue).await;
                let delivery = Box::pin(c.next()).await;
                // Paused while it waited: held, not started, until resumed.
                gate.wait_open(queue).await;
                delivery
            }
        }
    }

    /// Stops consuming; deliveries not settled go back to the broker.
    pub async fn close(&mut self) {
        match self {
            Consumer::RabbitMq(c) => c.close().await,
            Consumer::RedisStreams(c) => c.close().await,
            Consumer::Merged(c) => c.close().await,
            Consumer::Gated(c, _, _) => Box::pin(c.close()).await,
        }
    }
}

impl Source for RabbitConsumer {
    fn next(&mut self) -> BoxFuture<'_, Delivery> {
        Box::pin(RabbitConsumer::next(self))
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(RabbitConsumer::close(self))
    }
}

impl Source for RedisConsumer {
    fn next(&mut self) -> BoxFuture<'_, Delivery> {
        Box::pin(RedisConsumer::next(self))
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(RedisConsumer::close(self))
    }
}
