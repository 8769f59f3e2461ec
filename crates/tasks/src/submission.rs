//! Checks of a job about to be submitted, by a request or by a schedule:
//! its kind is known, its parameters are valid for the kind, and the device
//! it names (if the kind takes one) is an SNMP device of the tenant. Each
//! failure names the field at fault.

use ferro_db::{DbError, TenantTx};
use serde_json::Value;
use uuid::Uuid;

use crate::JobKind;
use crate::kinds::{DeviceNeed, ParamError};

/// The kind named `kind`.
pub fn parse_kind(kind: &str) -> Result<JobKind, ParamError> {
    JobKind::parse(kind).ok_or_else(|| {
        let known: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
        ParamError::new(
            "kind",
            format!("unknown job kind; one of {}", known.join(", ")),
        )
    })
}

/// The parameters of a `kind` job, normalised, if they and whether a device
/// is named suit the kind.
pub fn check_params(
    kind: JobKind,
    params: &Value,
    device_id: Option<Uuid>,
) -> Result<Value, Vec<ParamError>> {
    let params = kind.validate(params)?;
    match (kind.device_need(), device_id) {
        (DeviceNeed::SnmpDevice, None) => Err(vec![ParamError::new(
            "device_id",
            "is required for this kind",
        )]),
        (DeviceNeed::None, Some(_)) => Err(vec![ParamError::new(
            "device_id",
            "is not used by this kind",
        )]),
        _ => Ok(params),
    }
}

/// Whether the device a job names is an SNMP device of the tenant
/// (row-level security makes another tenant's device "no such device").
pub async fn check_device(
    tx: &mut TenantTx,
    device_id: Option<Uuid>,
) -> Result<Result<(), ParamError>, DbError> {
    let Some(device_id) = device_id else {
        return Ok(Ok(()));
    };
    let protocol: Option<String> = sqlx::query_scalar("SELECT protocol FROM devices WHERE id = $1")
        .bind(device_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match protocol.as_deref() {
        None => Err(ParamError::new("device_id", "no such device")),
        Some("snmp") => Ok(()),
        Some(_) => Err(ParamError::new(
            "device_id",
            "must be an snmp device for this kind",
        )),
    })
}
