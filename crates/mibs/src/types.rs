//! What a compile produces and the api shows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// One thing a compile said about a module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Diagnostic {
    /// `fatal`, `severe`, `error`, `minor`, `style`, `warning` or `info`.
    pub severity: String,
    /// A stable code, e.g. `import-module-not-found`, `parse-error`.
    pub code: String,
    pub message: String,
}

/// A module as the tenant's last compile left it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, ToSchema)]
pub struct MibModule {
    #[schema(example = "IF-MIB")]
    pub name: String,
    /// `ok`, or `error` when the compile reported an error in it (a missing
    /// import, a syntax error, a file that holds no module).
    #[schema(example = "ok")]
    pub status: String,
    #[sqlx(json)]
    pub diagnostics: Vec<Diagnostic>,
    /// The OID-bearing definitions it holds.
    pub objects: i32,
    /// The modules it imports from.
    pub imports: Vec<String>,
    /// The upload it came from.
    #[schema(required = true)]
    pub file_id: Option<Uuid>,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub compiled_at: DateTime<Utc>,
}

/// A named number of an enumerated syntax.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamedNumber {
    pub label: String,
    pub value: i64,
}

/// One part of a table row's index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IndexPart {
    pub name: String,
    pub implied: bool,
}

/// A node of the OID tree and, for an OBJECT-TYPE, its definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct MibNode {
    #[schema(example = "1.3.6.1.2.1.1.1")]
    pub oid: String,
    #[schema(example = "sysDescr")]
    pub name: String,
    #[schema(required = true, example = "SNMPv2-MIB")]
    pub module: Option<String>,
    /// `node`, `scalar`, `table`, `row`, `column`, `notification`, `group`,
    /// `compliance`, `capabilities`, `moduleidentity`, `objectidentity`,
    /// `internal`.
    #[schema(example = "scalar")]
    pub kind: String,
    /// The syntax as named (a textual convention, or a base type).
    #[schema(required = true, example = "DisplayString")]
    pub syntax: Option<String>,
    /// The base type underneath the syntax's chain.
    #[schema(required = true, example = "OCTET STRING")]
    pub base_type: Option<String>,
    #[schema(required = true, example = "255a")]
    pub display_hint: Option<String>,
    #[sqlx(json)]
    pub enums: Vec<NamedNumber>,
    /// Value ranges, e.g. `0..255`.
    #[sqlx(json)]
    pub ranges: Vec<String>,
    /// Size ranges, e.g. `0..255`.
    #[sqlx(json)]
    pub sizes: Vec<String>,
    #[schema(required = true, example = "read-only")]
    pub access: Option<String>,
    #[schema(required = true, example = "current")]
    pub status: Option<String>,
    #[schema(required = true)]
    pub description: Option<String>,
    #[schema(required = true)]
    pub units: Option<String>,
    /// A row's (or a column's row's) index, in order.
    #[sqlx(json)]
    pub indexes: Vec<IndexPart>,
    /// The row this row augments.
    #[schema(required = true)]
    pub augments: Option<String>,
}

/// A node in a list: its OID, name and kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, ToSchema)]
pub struct NodeSummary {
    pub oid: String,
    pub name: String,
    #[schema(required = true)]
    pub module: Option<String>,
    pub kind: String,
}

/// A module's text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSource {
    pub name: String,
    pub source: String,
    pub file_id: Option<Uuid>,
}

/// What a compile made of one module.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledModule {
    pub name: String,
    /// `ok` or `error`.
    pub status: &'static str,
    pub diagnostics: Vec<Diagnostic>,
    pub imports: Vec<String>,
    pub objects: i32,
    /// Empty for a file that holds no module (nothing to compile again).
    pub source: String,
    pub file_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    pub modules: Vec<CompiledModule>,
    /// The whole tree, base modules included, parents before children.
    pub nodes: Vec<MibNode>,
}

/// What naming needs of a node (`records::known_nodes`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Known {
    pub oid: String,
    pub name: String,
    pub module: Option<String>,
    pub kind: String,
    pub base_type: Option<String>,
    pub display_hint: Option<String>,
    #[sqlx(json)]
    pub enums: Vec<NamedNumber>,
    #[sqlx(json)]
    pub indexes: Vec<IndexPart>,
    #[sqlx(json)]
    pub sizes: Vec<String>,
}
