//! `devices.poll`.

use ferro_tasks::kinds::DevicesPollParams;
use serde_json::{Value, json};

use super::context::{JobContext, JobError};
use super::snmp::{REQUEST_TIMEOUT, Target, check_status, parse_oid, session};

/// `devices.poll`: sysUpTime from every SNMP device of every tenant, a few at
/// a time; each device is recorded `up` (and seen now) or `down`. A device
/// that does not answer is a finding, not a failure of the job.
pub async fn run(p: DevicesPollParams, job: &JobContext) -> Result<Vec<Value>, JobError> {
    use futures_util::StreamExt;
    let devices = job.db.maintenance_snmp_devices().await?;
    let total = devices.len();
    let mut answers = futures_util::stream::iter(devices)
        .map(|d| async move {
            let target = Target {
                host: d.host,
                port: d.port,
                version: d.snmp_version.unwrap_or_else(|| "v2c".into()),
                community: d.snmp_community.unwrap_or_default(),
            };
            (d.id, Box::pin(uptime(&target)).await.is_ok())
        })
        .buffer_unordered(p.concurrency.unwrap_or(16) as usize);
    let (mut up, mut done, mut reported) = (0usize, 0usize, 0usize);
    loop {
        let next = tokio::select! {
            _ = job.cancel.cancelled() => return Err(JobError::Cancelled),
            next = answers.next() => next,
        };
        let Some((id, answered)) = next else { break };
        job.db.maintenance_device_polled(id, answered).await?;
        done += 1;
        up += usize::from(answered);
        let percent = done * 100 / total.max(1);
        if percent >= reported + 10 && percent < 100 {
            reported = percent;
            job.progress(percent as u8).await;
        }
    }
    Ok(vec![json!({"polled": total, "up": up, "down": total - up})])
}

/// sysUpTime.0 from the target: `Ok` if it answered in time.
async fn uptime(t: &Target) -> Result<(), JobError> {
    let mut sess = session(t).await?;
    let oid = parse_oid("1.3.6.1.2.1.1.3.0")?;
    let pdu = tokio::time::timeout(REQUEST_TIMEOUT, sess.get(&oid))
        .await
        .map_err(|_| JobError::Transient("no answer".into()))?
        .map_err(JobError::transient)?;
    check_status(pdu.error_status)
}
