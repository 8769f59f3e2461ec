//! The worker: consumes task envelopes from the broker and runs the jobs,
//! and runs the outbox relay.
//!
//! For each delivery ([`runner`], [`attempt`]): claim the job with a guarded
//! UPDATE inside the job's tenant (a duplicate or a job another worker holds
//! is not run twice), run its handler ([`jobs`]) under a time limit while
//! renewing the lease and watching for cancellation ([`watch`]), record the
//! outcome, and only then ack. Every write of a job's row goes through one
//! [`recorder::Recorder`], which batches them. Failures with attempts left
//! go back through the outbox with exponential backoff; the rest fail and
//! are dead-lettered. On shutdown the worker stops taking deliveries, gives
//! running jobs a grace period, and hands the rest back.

mod attempt;
mod claims;
pub mod config;
mod control;
pub mod events;
pub mod heartbeat;
mod jobs;
pub mod limits;
pub mod metrics;
pub mod recorder;
pub mod relay;
pub mod runner;
pub mod service;
mod watch;

pub use config::{RunConfig, SmtpConfig, WorkerConfig};
pub use events::Events;
pub use heartbeat::{host_name, ping};
pub use runner::run;
