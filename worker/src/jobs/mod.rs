//! What each job kind does: one module per kind, and [`run`], which
//! dispatches an attempt to its kind. A handler gets the job's
//! [`JobContext`] and returns its result rows, or a [`JobError`] that says
//! whether another attempt is worth it.

mod cleanup;
mod context;
mod email;
mod export;
mod mib;
mod names;
mod noop;
mod poll;
mod prune;
mod snmp;

use ferro_tasks::JobKind;
use serde_json::Value;

pub use context::{JobContext, JobError};

fn params<P: serde::de::DeserializeOwned>(value: &Value) -> Result<P, JobError> {
    // The api validated them; a failure here means the row was changed since.
    serde_json::from_value(value.clone())
        .map_err(|e| JobError::Permanent(format!("bad parameters: {e}")))
}

/// Runs one attempt of `kind`.
pub async fn run(
    kind: JobKind,
    params_json: &Value,
    job: &JobContext,
) -> Result<Vec<Value>, JobError> {
    match kind {
        JobKind::Noop => noop::run(params(params_json)?, job).await,
        JobKind::DevicesExport => export::run(params(params_json)?, job).await,
        // Boxed: SNMP sessions make large futures.
        JobKind::DevicesPoll => Box::pin(poll::run(params(params_json)?, job)).await,
        JobKind::SnmpGet => Box::pin(snmp::get(params(params_json)?, job)).await,
        JobKind::SnmpWalk => Box::pin(snmp::walk(params(params_json)?, job)).await,
        JobKind::SessionsCleanup => cleanup::run(params(params_json)?, job).await,
        JobKind::EmailSend => email::send(params(params_json)?, job).await,
        JobKind::JobsPrune => prune::run(params(params_json)?, job).await,
        JobKind::MibCompile => mib::compile(params(params_json)?, job).await,
    }
}
