//! The Redis Streams backend.
//!
//! Per name prefix `P`:
//! - stream `P:jobs`, read by consumer group `workers`; every worker process
//!   is one consumer of the group (named by its worker id);
//! - an entry is acknowledged (`XACK`) and deleted (`XDEL`) in one `MULTI`
//!   after the job's outcome committed, so the stream holds only work that
//!   is waiting or in flight; the acks of one moment share that `MULTI`;
//! - entries a consumer read but did not settle within the visibility
//!   timeout (its process died) are taken over by another consumer with
//!   `XAUTOCLAIM` and delivered again, marked redelivered. A live consumer
//!   keeps its in-flight entries fresh by re-claiming them for itself
//!   (`XCLAIM ... JUSTID`, which does not count as a delivery), so a long job
//!   is never taken away from a worker that is still running it;
//! - dead letters go to stream `P:jobs:dead` (capped at about 100,000 entries);
//! - delayed retries wait in sorted set `P:jobs:delayed`, scored by due time
//!   in Redis's own clock; consumers move due members to the stream with a
//!   script, so no message is lost between the two.
//!
//! Redis keeps the stream only as well as it is configured to: run it with
//! an append-only file (as the compose file does) for jobs to survive a
//! restart of Redis itself.

mod broker;
mod consumer;
mod keys;
mod receipt;

pub use broker::RedisBroker;
pub use consumer::RedisConsumer;
