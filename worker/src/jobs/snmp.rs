//! `snmp.get` and `snmp.walk` (GETBULK on v2c) over SNMP v1/v2c against
//! the job's device,
//! and the SNMP sessions `devices.poll` uses too.
//! snmp2's async session has no timeout of its own: every request is bounded
//! here. Timeouts and I/O errors are transient (retried); SNMP error
//! statuses and bad device settings are not.

use std::time::Duration;

use ferro_tasks::kinds::{SnmpGetParams, SnmpWalkParams};
use serde_json::{Value, json};
use snmp2::{AsyncSession, Oid};

use super::context::{JobContext, JobError};

pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) struct Target {
    pub host: String,
    pub port: i32,
    pub version: String,
    pub community: String,
}

async fn target(job: &JobContext) -> Result<Target, JobError> {
    let device_id = job
        .device_id
        .ok_or_else(|| JobError::Permanent("the job has no device".into()))?;
    let mut tx = job.db.begin(job.ctx).await?;
    let row: Option<(String, i32, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT host, port, snmp_version, snmp_community FROM devices WHERE id = $1 AND protocol = 'snmp'",
    )
    .bind(device_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(ferro_db::DbError::from)?;
    tx.end_read_only();
    match row {
        Some((host, port, Some(version), Some(community))) => Ok(Target {
            host,
            port,
            version,
            community,
        }),
        Some(_) => Err(JobError::Permanent(
            "the device has no SNMP settings".into(),
        )),
        None => Err(JobError::Permanent("the device no longer exists".into())),
    }
}

/// The session is boxed: it holds a 64 KB send buffer inline, too large to
/// move around the stack of a deep future.
pub(super) async fn session(t: &Target) -> Result<Box<AsyncSession>, JobError> {
    let host = t.host.trim_start_matches('[').trim_end_matches(']');
    let addr = tokio::time::timeout(
        REQUEST_TIMEOUT,
        tokio::net::lookup_host((host, t.port as u16)),
    )
    .await
    .map_err(|_| JobError::Transient(format!("resolving {host} timed out")))?
    .map_err(|e| JobError::Transient(format!("cannot resolve {host}: {e}")))?
    .next()
    .ok_or_else(|| JobError::Permanent(format!("{host} has no address")))?;
    let opened = match t.version.as_str() {
        "v1" => Box::pin(AsyncSession::new_v1(addr, t.community.as_bytes(), 0))
            .await
            .map(Box::new),
        _ => Box::pin(AsyncSession::new_v2c(addr, t.community.as_bytes(), 0))
            .await
            .map(Box::new),
    };
    opened.map_err(|e| JobError::Transient(format!("cannot open an SNMP session: {e}")))
}

pub(super) fn parse_oid(text: &str) -> Result<Oid<'static>, JobError> {
    ferro_tasks::kinds::oid_arcs(text)
        .and_then(|arcs| Oid::from(&arcs.into_iter().map(u64::from).collect::<Vec<_>>()).ok())
        .ok_or_else(|| JobError::Permanent(format!("bad OID {text}")))
}

fn oid_text(oid: &Oid<'_>) -> String {
    oid.to_id_string()
}

/// An SNMP value as JSON: `{type, value}`. An OCTET STRING that is text
/// (UTF-8 without control characters other than tab and line breaks) is a
/// `string`; any other (a MAC address, a bit map, binary data) is a
/// `hex_string` of colon-separated byte pairs, as is an `opaque` value, so
/// no byte is lost or replaced and none (NUL) makes the result unstorable.
fn value_json(value: &snmp2::Value<'_>) -> (&'static str, Value) {
    use snmp2::Value as V;
    match value {
        V::Boolean(b) => ("boolean", json!(b)),
        V::Null => ("null", Value::Null),
        V::Integer(i) => ("integer", json!(i)),
        V::OctetString(bytes) => match text(bytes) {
            Some(text) => ("string", json!(text)),
            None => ("hex_string", json!(hex(bytes))),
        },
        V::ObjectIdentifier(oid) => ("oid", json!(oid_text(oid))),
        V::IpAddress(ip) => (
            "ip_address",
            json!(format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3])),
        ),
        V::Counter32(n) => ("counter32", json!(n)),
        V::Unsigned32(n) => ("unsigned32", json!(n)),
        V::Timeticks(n) => ("timeticks", json!(n)),
        V::Counter64(n) => ("counter64", json!(n)),
        V::Opaque(bytes) => ("opaque", json!(hex(bytes))),
        V::NoSuchObject => ("no_such_object", Value::Null),
        V::NoSuchInstance => ("no_such_instance", Value::Null),
        V::EndOfMibView => ("end_of_mib_view", Value::Null),
        _ => ("other", Value::Null),
    }
}

/// The octets as text, if they are text.
fn text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    (!text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')))
    .then_some(text)
}

/// `02:fc:00:00:00:01`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The error statuses of RFC 3416, by number.
const ERROR_STATUSES: [&str; 19] = [
    "noError",
    "tooBig",
    "noSuchName",
    "badValue",
    "readOnly",
    "genErr",
    "noAccess",
    "wrongType",
    "wrongLength",
    "wrongEncoding",
    "wrongValue",
    "noCreation",
    "inconsistentValue",
    "resourceUnavailable",
    "commitFailed",
    "undoFailed",
    "authorizationError",
    "notWritable",
    "inconsistentName",
];

/// An SNMP error status as a job error naming it, e.g. `SNMP error
/// noSuchName (2)`; an agent's refusal is permanent (asking again gets the
/// same answer).
pub(super) fn check_status(status: u32) -> Result<(), JobError> {
    match status {
        0 => Ok(()),
        s => Err(JobError::Permanent(format!(
            "SNMP error {} ({s})",
            ERROR_STATUSES.get(s as usize).unwrap_or(&"unknown")
        ))),
    }
}

pub async fn get(p: SnmpGetParams, job: &JobContext) -> Result<Vec<Value>, JobError> {
    let t = target(job).await?;
    let mut sess = session(&t).await?;
    let oids: Vec<Oid<'static>> = p
        .oids
        .iter()
        .map(|o| parse_oid(o))
        .collect::<Result<_, _>>()?;
    let refs: Vec<&Oid<'_>> = oids.iter().collect();
    let reply = tokio::select! {
        _ = job.cancel.cancelled() => return Err(JobError::Cancelled),
        r = tokio::time::timeout(REQUEST_TIMEOUT, sess.get_many(&refs)) => r,
    };
    let pdu = reply
        .map_err(|_| {
            JobError::Transient(format!(
                "no SNMP answer from {}:{} within {} s",
                t.host,
                t.port,
                REQUEST_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| JobError::Transient(format!("SNMP request failed: {e}")))?;
    check_status(pdu.error_status)?;
    let mut values: Vec<Value> = pdu
        .varbinds
        .map(|(oid, value)| {
            let (kind, v) = value_json(&value);
            json!({"oid": oid_text(&oid), "type": kind, "value": v})
        })
        .collect();
    super::names::name_values(job, &mut values).await;
    Ok(vec![json!({"values": values})])
}

pub async fn walk(p: SnmpWalkParams, job: &JobContext) -> Result<Vec<Value>, JobError> {
    let t = target(job).await?;
    let mut sess = session(&t).await?;
    let root = parse_oid(&p.oid)?;
    let root_parts: Vec<u64> = root.iter().map(|i| i.collect()).unwrap_or_default();
    let max = p.max_rows.unwrap_or(1000) as usize;
    // v2c walks with GETBULK, many values a round trip; v1 has only GETNEXT.
    let mut repetitions = if t.version == "v1" {
        0
    } else {
        p.max_repetitions.unwrap_or(20)
    };
    let mut current = root.clone();
    let mut current_parts = root_parts.clone();
    let mut values = Vec::new();
    let mut truncated = false;
    'walk: loop {
        if values.len() >= max {
            truncated = true;
            break;
        }
        let reply = tokio::select! {
            _ = job.cancel.cancelled() => return Err(JobError::Cancelled),
            r = tokio::time::timeout(REQUEST_TIMEOUT, async {
                if repetitions == 0 {
                    sess.getnext(&current).await
                } else {
                    sess.getbulk(&[&current], 0, repetitions).await
                }
            }) => r,
        };
        let pdu = reply
            .map_err(|_| {
                JobError::Transient(format!(
                    "no SNMP answer from {}:{} within {} s",
                    t.host,
                    t.port,
                    REQUEST_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| JobError::Transient(format!("SNMP request failed: {e}")))?;
        if pdu.error_status == 2 && repetitions == 0 {
            break; // v1's end of the MIB
        }
        if pdu.error_status == 1 && repetitions > 1 {
            // tooBig: the answer would not fit one message; ask for fewer.
            repetitions /= 2;
            continue;
        }
        check_status(pdu.error_status)?;
        let mut advanced = false;
        let mut last = None;
        for (oid, value) in pdu.varbinds {
            let parts: Vec<u64> = oid.iter().map(|i| i.collect()).unwrap_or_default();
            if !parts.starts_with(&root_parts) || matches!(value, snmp2::Value::EndOfMibView) {
                break 'walk;
            }
            let (kind, v) = value_json(&value);
            values.push(json!({"oid": oid_text(&oid), "type": kind, "value": v}));
            advanced = true;
            last = Some(parts);
            if values.len() >= max {
                break;
            }
        }
        let Some(parts) = last.filter(|_| advanced) else {
            break;
        };
        // OIDs order as their arcs do: the walk must move forward.
        if parts <= current_parts {
            return Err(JobError::Permanent(
                "the agent did not advance the walk".into(),
            ));
        }
        current = Oid::from(&parts)
            .map_err(|_| JobError::Permanent("the agent returned a bad OID".into()))?;
        current_parts = parts;
        if values.len() % 100 < repetitions.max(1) as usize {
            job.progress(((values.len() * 90) / max).min(90) as u8)
                .await;
        }
    }
    values.truncate(max);
    super::names::name_values(job, &mut values).await;
    Ok(vec![
        json!({"root": p.oid, "rows": values.len(), "truncated": truncated, "values": values}),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use snmp2::Value as V;

    #[test]
    fn error_statuses_are_named() {
        assert!(check_status(0).is_ok());
        for (status, text) in [
            (2, "SNMP error noSuchName (2)"),
            (17, "SNMP error notWritable (17)"),
            (99, "SNMP error unknown (99)"),
        ] {
            match check_status(status) {
                Err(JobError::Permanent(message)) => assert_eq!(message, text),
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn octet_strings_are_text_or_hex() {
        let mac = [0x02, 0xfc, 0x00, 0x00, 0x00, 0x01];
        assert_eq!(
            value_json(&V::OctetString(&mac)),
            ("hex_string", json!("02:fc:00:00:00:01"))
        );
        // Not UTF-8.
        assert_eq!(
            value_json(&V::OctetString(&[0xff, 0xfe])),
            ("hex_string", json!("ff:fe"))
        );
        assert_eq!(
            value_json(&V::OctetString(
                "Linux host 6.1\r\n\tx86_64 Ünïcode".as_bytes()
            )),
            ("string", json!("Linux host 6.1\r\n\tx86_64 Ünïcode"))
        );
        assert_eq!(value_json(&V::OctetString(b"")), ("string", json!("")));
        assert_eq!(value_json(&V::Opaque(&[1, 2])), ("opaque", json!("01:02")));
    }
}
