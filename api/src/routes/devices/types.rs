//! What the devices routes read and answer, with the rules each field
//! follows and how the OpenAPI document states them.

use crate::openapi::fields::{self, display_name, search};
use crate::validation::Validator;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Snmp,
    Http,
}

impl Protocol {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Protocol::Snmp => "snmp",
            Protocol::Http => "http",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum SnmpVersion {
    #[serde(rename = "v1")]
    V1,
    #[serde(rename = "v2c")]
    V2c,
}

/// SNMP settings; accepted on writes, never returned.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnmpSettings {
    pub version: SnmpVersion,
    #[schema(example = "public", min_length = 1, max_length = 128)]
    pub community: String,
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Device {
    pub id: Uuid,
    pub name: String,
    #[schema(example = "snmp")]
    pub protocol: String,
    pub host: String,
    pub port: i32,
    pub tags: Vec<String>,
    /// `unknown`, `up` or `down`.
    pub status: String,
    #[serde(serialize_with = "ferro_db::timestamp::option")]
    #[schema(required = true)]
    pub last_seen_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(super) struct CountedDevice {
    pub(super) total: i64,
    #[sqlx(flatten)]
    pub(super) device: Device,
}

pub(super) const COLUMNS: &str =
    "id, name, protocol, host, port, tags, status, last_seen_at, created_at, updated_at";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDevice {
    pub name: String,
    pub protocol: Protocol,
    pub host: String,
    /// Default 161 for snmp, 80 for http.
    pub port: Option<i32>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Required for snmp devices; not allowed for http ones.
    pub snmp: Option<SnmpSettings>,
}

/// Written by hand: whether `snmp` is required or refused depends on
/// `protocol`, one branch each.
impl utoipa::PartialSchema for CreateDevice {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        let properties = |protocol: &str, snmp: Value| {
            json!({
                "name": display_name(),
                "protocol": {"type": "string", "enum": [protocol]},
                "host": host(),
                "port": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535,
                         "description": "Default 161 for snmp, 80 for http."},
                "tags": tags(),
                "snmp": snmp,
            })
        };
        let snmp = json!({"$ref": "#/components/schemas/SnmpSettings"});
        fields::schema(json!({
            "oneOf": [
                {"type": "object", "required": ["name", "protocol", "host", "snmp"],
                 "additionalProperties": false, "properties": properties("snmp", snmp)},
                {"type": "object", "required": ["name", "protocol", "host"],
                 "additionalProperties": false,
                 "properties": properties("http", json!({"type": "null"}))},
            ],
            "example": {"name": "core-router", "protocol": "snmp", "host": "10.0.0.1", "port": 161,
                        "tags": ["core"], "snmp": {"version": "v2c", "community": "public"}},
        }))
    }
}

impl utoipa::ToSchema for CreateDevice {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("Protocol".into(), Protocol::schema()));
        schemas.push(("SnmpSettings".into(), SnmpSettings::schema()));
        schemas.push(("SnmpVersion".into(), SnmpVersion::schema()));
    }
}

/// A host name or address, as [`valid_host`] checks it.
pub(super) fn host() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    fields::schema(
        json!({"type": "string", "pattern": "^[A-Za-z0-9.:_\\[\\]-]{1,253}$",
                          "example": "10.0.0.1"}),
    )
}

/// A port, 1 to 65535.
pub(super) fn port() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    fields::schema(json!({"type": "integer", "minimum": 1, "maximum": 65535}))
}

/// Tags, as [`check_tags`] checks them.
pub(super) fn tags() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    fields::schema(json!({
        "type": "array", "maxItems": 32, "uniqueItems": true,
        "items": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$"},
        "example": ["core"],
    }))
}

pub(super) fn snmp_settings() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    fields::schema(json!({"$ref": "#/components/schemas/SnmpSettings"}))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "core-router-2", "tags": ["core", "dc1"]}))]
pub struct UpdateDevice {
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = display_name)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = host)]
    pub host: Option<String>,
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = port)]
    pub port: Option<i32>,
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = tags)]
    pub tags: Option<Vec<String>>,
    /// Required when `host` or `port` of an snmp device changes; not
    /// allowed for http devices.
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = snmp_settings)]
    pub snmp: Option<SnmpSettings>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    /// Page number, from 1 (default 1) to 1,000,000.
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<i64>,
    /// Case-insensitive substring of the name or host.
    #[param(schema_with = search)]
    pub q: Option<String>,
    pub protocol: Option<Protocol>,
    /// Devices carrying this tag.
    pub tag: Option<String>,
    /// `created_at` (default), `-created_at`, `name` or `-name`.
    #[param(schema_with = device_order)]
    pub sort: Option<String>,
}

pub(super) fn device_order() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    fields::schema(fields::one_of(&[
        "created_at",
        "-created_at",
        "name",
        "-name",
    ]))
}

pub(super) fn valid_host(host: &str) -> bool {
    (1..=253).contains(&host.len())
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'_' | b'-' | b'[' | b']')
        })
}

pub(super) fn check_tags(v: &mut Validator, tags: &[String]) {
    v.check(tags.len() <= 32, "tags", "at most 32 tags");
    v.check(
        tags.iter().all(|t| {
            (1..=64).contains(&t.len())
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        }),
        "tags",
        "each tag is 1 to 64 letters, digits or -_.:",
    );
    let distinct: std::collections::HashSet<&str> = tags.iter().map(String::as_str).collect();
    v.check(
        distinct.len() == tags.len(),
        "tags",
        "each tag at most once",
    );
}

pub(super) fn check_snmp(v: &mut Validator, snmp: &SnmpSettings) {
    v.check(
        (1..=128).contains(&snmp.community.chars().count()),
        "snmp.community",
        "must be 1 to 128 characters",
    );
}
