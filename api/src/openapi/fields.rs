//! Schemas of request fields whose rules more than one resource shares,
//! and [`schema`], which writes a schema as JSON. Each states exactly what
//! the server accepts, so that a client (or a property-based tester) that
//! keeps to the document is never refused for the shape of its request.
//! The patterns are written for both ECMAScript (JSON Schema's dialect) and
//! Python's `re`.

use serde_json::{Value, json};
use utoipa::openapi::{RefOr, Schema};

/// A schema written as JSON.
pub fn schema(value: Value) -> RefOr<Schema> {
    serde_json::from_value(value).expect("a schema written by hand is a schema")
}

/// The characters `str::trim` removes that are not control characters
/// (those are refused anywhere in a name).
const BLANK: &str = r"\u0020\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// What `char::is_control` calls a control character.
const CONTROL: &str = r"\u0000-\u001F\u007F-\u009F";
/// Every character `str::trim` removes (Unicode White_Space).
const WHITE_SPACE: &str =
    r"\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// A display name (of a device, tenant or schedule), as
/// `Validator::display_name` checks it: 1 to 200 characters once the blanks
/// around it are trimmed, none of them a control character.
pub fn display_name() -> RefOr<Schema> {
    let pattern = format!(
        "^[{BLANK}]*[^{CONTROL}{BLANK}](?:[^{CONTROL}]{{0,198}}[^{CONTROL}{BLANK}])?[{BLANK}]*$"
    );
    schema(json!({
        "type": "string",
        "pattern": pattern,
        "description": "1 to 200 characters once the blanks around it are trimmed (they are), \
                        no control characters",
        "example": "core-router",
    }))
}

/// Text that is not only blanks, without NUL: `trim()` must leave something.
pub fn not_blank(max_chars: u32) -> Value {
    json!({
        "type": "string",
        "maxLength": max_chars,
        "pattern": format!("^[^\\u0000]*[^\\u0000{WHITE_SPACE}][^\\u0000]*$"),
    })
}

/// The search text `q` of the lists: at most 200 characters.
pub fn search() -> RefOr<Schema> {
    schema(json!({
        "type": "string",
        "maxLength": 200,
        "pattern": super::common::NO_NUL,
        "description": "Case-insensitive substring to look for (at most 200 characters; \
                        `%` and `_` are taken literally)",
    }))
}

/// One of `values`, exactly.
pub fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

/// A role's name: lower-case letter first, then 1 to 62 lower-case letters,
/// digits, `_` or `-` (the `roles_name_format` constraint).
pub const ROLE_NAME: &str = "^[a-z][a-z0-9_-]{1,62}$";

/// A user name: 3 to 64 letters, digits, `.`, `_`, `-` or `@`
/// (`ferro_config::valid_username`).
pub const USERNAME: &str = "^[A-Za-z0-9._@-]{3,64}$";

/// An email address as `users` stores it: one `@`, something before it, a
/// domain with a dot neither first nor last, no white space; at most 254
/// characters.
pub fn email() -> Value {
    let part = format!("[^@\\u0000{WHITE_SPACE}]");
    let edge = format!("[^@.\\u0000{WHITE_SPACE}]");
    json!({
        "type": "string",
        "maxLength": 254,
        "pattern": format!("^{part}+@{edge}{part}*\\.{part}*{edge}$"),
        "example": "alice@example.com",
    })
}

/// A new password: 8 to 256 characters.
pub fn new_password() -> RefOr<Schema> {
    schema(json!({
        "type": "string",
        "minLength": 8,
        "maxLength": 256,
        "pattern": super::common::NO_NUL,
        "writeOnly": true,
    }))
}

/// Schema for `schema_with` of a `bool` that may be left out but not null.
pub fn boolean() -> RefOr<Schema> {
    schema(json!({"type": "boolean"}))
}

/// A job's kind and what goes with it, one branch per kind: `kind` names
/// it, `params` are that kind's ([`ferro_tasks::JobKind::params_schema`]),
/// required when the kind has required parameters (absent, they are `{}`),
/// and `device_id` names an SNMP device for the kinds that take one and is
/// absent or null for the others. `properties` and `required` are the
/// other fields of the body, the same in every branch.
pub fn job_branches(properties: &Value, required: &[&str]) -> Vec<Value> {
    ferro_tasks::JobKind::ALL
        .iter()
        .map(|kind| {
            let params = kind.params_schema();
            let mut needed: Vec<&str> = required.to_vec();
            needed.push("kind");
            if params["required"].as_array().is_some_and(|r| !r.is_empty()) {
                needed.push("params");
            }
            let device = match kind.device_need() {
                ferro_tasks::kinds::DeviceNeed::SnmpDevice => {
                    needed.push("device_id");
                    json!({"type": "string", "format": "uuid",
                           "description": "An SNMP device of the tenant"})
                }
                ferro_tasks::kinds::DeviceNeed::None => json!({"type": "null"}),
            };
            let mut props = properties.as_object().cloned().unwrap_or_default();
            props.insert(
                "kind".into(),
                json!({"type": "string", "enum": [kind.as_str()]}),
            );
            props.insert("params".into(), params);
            props.insert("device_id".into(), device);
            if let Some(timeout) = props.get_mut("timeout_seconds") {
                timeout["maximum"] = json!(kind.time_limit().as_secs());
            }
            json!({"type": "object", "additionalProperties": false, "required": needed,
                   "properties": props})
        })
        .collect()
}

/// Every job kind's name.
pub fn job_kind() -> RefOr<Schema> {
    let kinds: Vec<&str> = ferro_tasks::JobKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    schema(json!({"type": "string", "enum": kinds}))
}
