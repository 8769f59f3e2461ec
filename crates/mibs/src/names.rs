//! Names for SNMP results: a varbind's OID as `MODULE::name` with its
//! instance (a table row's index decoded), and its value as the MIB says to
//! show it (an enumeration's label, a display hint applied), from the nodes
//! of the tenant's tree that the OID passes through.

use std::collections::HashMap;

use mib_rs::mib::display_hint::{HexCase, format_integer, format_octets};
use serde_json::Value;

use crate::types::{IndexPart, Known};

/// Every prefix of a dotted OID, shortest first (`1`, `1.3`, ...).
pub fn prefixes(oid: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut end = 0;
    for (i, c) in oid.char_indices() {
        if c == '.' {
            out.push(oid[..i].to_owned());
        }
        end = i + c.len_utf8();
    }
    if end > 0 {
        out.push(oid.to_owned());
    }
    out
}

/// The deepest known node on `oid`'s path, and the arcs below it.
fn deepest<'a>(oid: &str, known: &'a HashMap<String, Known>) -> Option<(&'a Known, Vec<u64>)> {
    let node = prefixes(oid)
        .into_iter()
        .rev()
        .find_map(|p| known.get(&p))?;
    let rest = oid[node.oid.len()..].trim_start_matches('.');
    let arcs = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('.')
            .map(|a| a.parse().ok())
            .collect::<Option<_>>()?
    };
    Some((node, arcs))
}

/// `MODULE::name` and the instance, e.g. `IF-MIB::ifDescr.2` or
/// `FERRO-MIB::ferroPortName."eth0"`; `None` when no node of the tree is
/// on the OID's path (the root's arcs excepted).
pub fn name(oid: &str, known: &HashMap<String, Known>) -> Option<String> {
    let (node, arcs) = deepest(oid, known)?;
    let module = node.module.as_deref()?;
    let mut out = format!("{module}::{}", node.name);
    if arcs.is_empty() {
        return Some(out);
    }
    let decoded = if node.kind == "column" && !node.indexes.is_empty() {
        decode_index(&arcs, &node.indexes, known)
    } else {
        None
    };
    match decoded {
        Some(parts) => parts.iter().for_each(|p| {
            out.push('.');
            out.push_str(p);
        }),
        None => arcs.iter().for_each(|a| {
            out.push('.');
            out.push_str(&a.to_string());
        }),
    }
    Some(out)
}

/// The index of a row, one text a part, from the arcs after the column;
/// `None` when the arcs do not decode as the index says (or a part's type
/// is unknown).
fn decode_index(
    arcs: &[u64],
    parts: &[IndexPart],
    known: &HashMap<String, Known>,
) -> Option<Vec<String>> {
    let mut at = 0;
    let mut out = Vec::new();
    for part in parts {
        // A row has a few index parts: a scan, rather than a map of the
        // whole tree built for every value named.
        let index = known.values().find(|k| k.name == part.name)?;
        let rest = &arcs[at..];
        let (text, used) = match index.base_type.as_deref()? {
            "Integer32" | "Unsigned32" | "Gauge32" | "Counter32" | "TimeTicks" | "Integer64"
            | "Unsigned64" => (rest.first()?.to_string(), 1),
            "IpAddress" => {
                let four = rest.get(..4)?;
                (
                    four.iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join("."),
                    4,
                )
            }
            "OCTET STRING" | "Opaque" | "Bits" => {
                let fixed = match index.sizes.as_slice() {
                    [one] => one.parse::<usize>().ok(),
                    _ => None,
                };
                let (len, skip) = match (part.implied, fixed) {
                    (true, _) => (rest.len(), 0),
                    (false, Some(n)) => (n, 0),
                    (false, None) => (usize::try_from(*rest.first()?).ok()?, 1),
                };
                let bytes: Vec<u8> = rest
                    .get(skip..skip + len)?
                    .iter()
                    .map(|a| u8::try_from(*a).ok())
                    .collect::<Option<_>>()?;
                (quoted(&bytes), skip + len)
            }
            "ObjectIdentifier" | "OBJECT IDENTIFIER" => {
                let (len, skip) = if part.implied {
                    (rest.len(), 0)
                } else {
                    (usize::try_from(*rest.first()?).ok()?, 1)
                };
                let sub = rest.get(skip..skip + len)?;
                (
                    sub.iter().map(u64::to_string).collect::<Vec<_>>().join("."),
                    skip + len,
                )
            }
            _ => return None,
        };
        out.push(text);
        at += used;
    }
    (at == arcs.len()).then_some(out)
}

/// A string index as net-snmp shows it: quoted text, or hex.
fn quoted(bytes: &[u8]) -> String {
    if !bytes.is_empty() && bytes.iter().all(|b| (0x20..0x7f).contains(b) && *b != b'"') {
        format!("\"{}\"", String::from_utf8_lossy(bytes))
    } else {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// The value as the MIB says to show it: an enumeration's label, or the
/// display hint applied; `None` when the MIB says nothing more than the
/// value itself.
pub fn display(
    oid: &str,
    kind: &str,
    value: &Value,
    known: &HashMap<String, Known>,
) -> Option<String> {
    let (node, _) = deepest(oid, known)?;
    if !matches!(node.kind.as_str(), "scalar" | "column") {
        return None;
    }
    let hint = node.display_hint.as_deref().unwrap_or("");
    match kind {
        "integer" => {
            let n = value.as_i64()?;
            if let Some(label) = node.enums.iter().find(|e| e.value == n) {
                return Some(label.label.clone());
            }
            (!hint.is_empty()).then(|| format_integer(hint, n, HexCase::Lower))?
        }
        "unsigned32" | "counter32" | "timeticks" => {
            let n = value.as_i64()?;
            (!hint.is_empty()).then(|| format_integer(hint, n, HexCase::Lower))?
        }
        "string" | "hex_string" if !hint.is_empty() => {
            let bytes = match kind {
                "string" => value.as_str()?.as_bytes().to_vec(),
                _ => value
                    .as_str()?
                    .split(':')
                    .map(|h| u8::from_str_radix(h, 16).ok())
                    .collect::<Option<Vec<u8>>>()?,
            };
            format_octets(hint, &bytes, HexCase::Lower)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NamedNumber;
    use serde_json::json;

    fn known(oid: &str, name: &str, kind: &str, base: &str) -> Known {
        Known {
            oid: oid.to_owned(),
            name: name.to_owned(),
            module: Some("TEST-MIB".to_owned()),
            kind: kind.to_owned(),
            base_type: Some(base.to_owned()),
            display_hint: None,
            enums: Vec::new(),
            indexes: Vec::new(),
            sizes: Vec::new(),
        }
    }

    fn tree() -> HashMap<String, Known> {
        let mut status = known("1.9.1.1.3", "portStatus", "column", "Integer32");
        status.indexes = vec![
            IndexPart {
                name: "portSlot".into(),
                implied: false,
            },
            IndexPart {
                name: "portName".into(),
                implied: false,
            },
        ];
        status.enums = vec![NamedNumber {
            label: "up".into(),
            value: 1,
        }];
        let mut mac = known("1.9.1.1.4", "portMac", "column", "OCTET STRING");
        mac.indexes = status.indexes.clone();
        mac.display_hint = Some("1x:".into());
        let mut descr = known("1.9.2", "boxDescr", "scalar", "OCTET STRING");
        descr.display_hint = Some("255a".into());
        [
            known("1.9", "box", "node", ""),
            known("1.9.1.1.1", "portSlot", "column", "Integer32"),
            known("1.9.1.1.2", "portName", "column", "OCTET STRING"),
            status,
            mac,
            descr,
        ]
        .into_iter()
        .map(|k| (k.oid.clone(), k))
        .collect()
    }

    #[test]
    fn oids_are_named_with_their_index_decoded() {
        let t = tree();
        assert_eq!(prefixes("1.9.2"), ["1", "1.9", "1.9.2"]);
        assert_eq!(name("1.9.2.0", &t).as_deref(), Some("TEST-MIB::boxDescr.0"));
        assert_eq!(
            name("1.9.1.1.3.7.4.101.116.104.48", &t).as_deref(),
            Some("TEST-MIB::portStatus.7.\"eth0\"")
        );
        // Arcs that do not decode as the index says stay numbers.
        assert_eq!(
            name("1.9.1.1.3.7.9.1", &t).as_deref(),
            Some("TEST-MIB::portStatus.7.9.1")
        );
        assert_eq!(name("1.9.7.7", &t).as_deref(), Some("TEST-MIB::box.7.7"));
        assert_eq!(name("1.3.6.1", &t), None);
    }

    #[test]
    fn values_are_shown_as_the_mib_says() {
        let t = tree();
        let status = "1.9.1.1.3.7.4.101.116.104.48";
        assert_eq!(
            display(status, "integer", &json!(1), &t).as_deref(),
            Some("up")
        );
        assert_eq!(display(status, "integer", &json!(5), &t), None);
        assert_eq!(
            display(
                "1.9.1.1.4.7.1.97",
                "hex_string",
                &json!("02:fc:00:00:00:01"),
                &t
            )
            .as_deref(),
            Some("02:fc:00:00:00:01")
        );
        assert_eq!(
            display("1.9.2.0", "string", &json!("router"), &t).as_deref(),
            Some("router")
        );
        assert_eq!(display("1.9.7.7", "integer", &json!(1), &t), None);
    }
}
