//! The worker against the real PostgreSQL and brokers, one module per
//! subject, linked into one binary. Each test has its own database and
//! broker prefix and runs the real worker loop (in-process, or the real
//! binary where a process must be killed). Tests written as
//! `async fn(Backend)` run on both brokers (submodules `rabbitmq` and
//! `redis_streams`); the others run on RabbitMQ.

/// Runs each named `async fn(Backend)` as a test on both brokers.
macro_rules! on_both_brokers {
    ($($name:ident),* $(,)?) => {
        mod rabbitmq {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::RabbitMq).await
            })*
        }
        mod redis_streams {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::RedisStreams).await
            })*
        }
    };
}

mod support;

mod cancellation;
mod chaos;
mod kinds;
mod names;
mod pipeline;
mod process;
mod recorder;
mod relay;
mod resilience;
