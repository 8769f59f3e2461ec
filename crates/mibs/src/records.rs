//! `mib_modules` and `mib_nodes`, in the tenant's transaction (row-level
//! security keeps each tenant to its own tree).

use ferro_db::{DbError, TenantTx};
use serde_json::Value;

use crate::types::{Compiled, Known, MibModule, MibNode, ModuleSource, NodeSummary};

/// Rows a statement inserts at most (19 arrays of this length are bound).
const CHUNK: usize = 5000;

const NODE_COLUMNS: &str = "oid, name, module, kind, syntax, base_type, display_hint, enums, \
    ranges, sizes, access, status, description, units, indexes, augments";

/// The modules a compile reads again: every module with a text.
pub async fn stored_sources(tx: &mut TenantTx) -> Result<Vec<ModuleSource>, DbError> {
    let rows: Vec<(String, String, Option<uuid::Uuid>)> = sqlx::query_as(
        "SELECT name, source, file_id FROM mib_modules WHERE source <> '' ORDER BY name",
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, source, file_id)| ModuleSource {
            name,
            source,
            file_id,
        })
        .collect())
}

/// Writes what a compile made: its modules (new ones added, the others
/// updated) and the whole tree in place of the last one.
pub async fn save(tx: &mut TenantTx, compiled: &Compiled) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    let m = &compiled.modules;
    let diagnostics: Vec<Value> = m
        .iter()
        .map(|m| serde_json::to_value(&m.diagnostics).expect("diagnostics serialise"))
        .collect();
    let imports: Vec<String> = m
        .iter()
        .map(|m| serde_json::to_string(&m.imports).expect("imports serialise"))
        .collect();
    sqlx::query(
        "INSERT INTO mib_modules (tenant_id, name, status, diagnostics, imports, objects, source, \
         file_id, compiled_at) \
         SELECT $1, u.name, u.status, u.diagnostics, \
                ARRAY(SELECT jsonb_array_elements_text(u.imports::jsonb)), u.objects, u.source, \
                u.file_id, now() \
         FROM UNNEST($2::text[], $3::text[], $4::jsonb[], $5::text[], $6::int4[], $7::text[], \
                     $8::uuid[]) AS u(name, status, diagnostics, imports, objects, source, file_id) \
         ON CONFLICT (tenant_id, name) DO UPDATE SET status = EXCLUDED.status, \
             diagnostics = EXCLUDED.diagnostics, imports = EXCLUDED.imports, \
             objects = EXCLUDED.objects, source = EXCLUDED.source, file_id = EXCLUDED.file_id, \
             compiled_at = EXCLUDED.compiled_at",
    )
    .bind(tenant)
    .bind(m.iter().map(|m| m.name.clone()).collect::<Vec<_>>())
    .bind(m.iter().map(|m| m.status.to_owned()).collect::<Vec<_>>())
    .bind(diagnostics)
    .bind(imports)
    .bind(m.iter().map(|m| m.objects).collect::<Vec<_>>())
    .bind(m.iter().map(|m| m.source.clone()).collect::<Vec<_>>())
    .bind(m.iter().map(|m| m.file_id).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;

    sqlx::query("DELETE FROM mib_nodes")
        .execute(&mut **tx)
        .await?;
    for chunk in compiled.nodes.chunks(CHUNK) {
        insert_nodes(tx, tenant, chunk).await?;
    }
    Ok(())
}

async fn insert_nodes(
    tx: &mut TenantTx,
    tenant: uuid::Uuid,
    nodes: &[MibNode],
) -> Result<(), DbError> {
    let text = |f: fn(&MibNode) -> Option<&String>| -> Vec<Option<String>> {
        nodes.iter().map(|n| f(n).cloned()).collect()
    };
    let json = |f: fn(&MibNode) -> Value| -> Vec<Value> { nodes.iter().map(f).collect() };
    let (parents, arcs): (Vec<String>, Vec<i64>) = nodes
        .iter()
        .map(|n| match n.oid.rsplit_once('.') {
            Some((parent, arc)) => (parent.to_owned(), arc.parse().unwrap_or(0)),
            None => (String::new(), n.oid.parse().unwrap_or(0)),
        })
        .unzip();
    sqlx::query(
        "INSERT INTO mib_nodes (tenant_id, oid, parent_oid, arc, name, module, kind, syntax, \
         base_type, display_hint, enums, ranges, sizes, access, status, description, units, \
         indexes, augments) \
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::jsonb[], \
             $13::jsonb[], $14::text[], $15::text[], $16::text[], $17::text[], $18::jsonb[], \
             $19::text[]) \
         ON CONFLICT (tenant_id, oid) DO NOTHING",
    )
    .bind(tenant)
    .bind(nodes.iter().map(|n| n.oid.clone()).collect::<Vec<_>>())
    .bind(parents)
    .bind(arcs)
    .bind(nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>())
    .bind(text(|n| n.module.as_ref()))
    .bind(nodes.iter().map(|n| n.kind.clone()).collect::<Vec<_>>())
    .bind(text(|n| n.syntax.as_ref()))
    .bind(text(|n| n.base_type.as_ref()))
    .bind(text(|n| n.display_hint.as_ref()))
    .bind(json(|n| {
        serde_json::to_value(&n.enums).expect("serialises")
    }))
    .bind(json(|n| {
        serde_json::to_value(&n.ranges).expect("serialises")
    }))
    .bind(json(|n| {
        serde_json::to_value(&n.sizes).expect("serialises")
    }))
    .bind(text(|n| n.access.as_ref()))
    .bind(text(|n| n.status.as_ref()))
    .bind(text(|n| n.description.as_ref()))
    .bind(text(|n| n.units.as_ref()))
    .bind(json(|n| {
        serde_json::to_value(&n.indexes).expect("serialises")
    }))
    .bind(text(|n| n.augments.as_ref()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A page of the tenant's modules, by name, and how many there are.
pub async fn modules(
    tx: &mut TenantTx,
    size: i64,
    offset: i64,
) -> Result<(Vec<MibModule>, i64), DbError> {
    let items = sqlx::query_as(
        "SELECT name, status, diagnostics, objects, imports, file_id, compiled_at \
         FROM mib_modules ORDER BY name LIMIT $1 OFFSET $2",
    )
    .bind(size)
    .bind(offset)
    .fetch_all(&mut **tx)
    .await?;
    let total = sqlx::query_scalar("SELECT count(*) FROM mib_modules")
        .fetch_one(&mut **tx)
        .await?;
    Ok((items, total))
}

pub async fn node_by_oid(tx: &mut TenantTx, oid: &str) -> Result<Option<MibNode>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {NODE_COLUMNS} FROM mib_nodes WHERE oid = $1"
    )))
    .bind(oid)
    .fetch_optional(&mut **tx)
    .await?)
}

/// The node named `name`, in `module` if given (a name may be defined by
/// several modules: then the first module by name).
pub async fn node_by_name(
    tx: &mut TenantTx,
    module: Option<&str>,
    name: &str,
) -> Result<Option<MibNode>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {NODE_COLUMNS} FROM mib_nodes WHERE name = $1 AND ($2::text IS NULL OR module = $2) \
         ORDER BY module NULLS LAST, oid LIMIT 1"
    )))
    .bind(name)
    .bind(module)
    .fetch_optional(&mut **tx)
    .await?)
}

/// The children of the node at `oid` (`""`: the top of the tree), by arc.
pub async fn children(tx: &mut TenantTx, oid: &str) -> Result<Vec<NodeSummary>, DbError> {
    Ok(sqlx::query_as(
        "SELECT oid, name, module, kind FROM mib_nodes WHERE parent_oid = $1 ORDER BY arc",
    )
    .bind(oid)
    .fetch_all(&mut **tx)
    .await?)
}

/// Nodes whose name or description matches `pattern` (an ILIKE pattern),
/// names first, then by OID; and how many match.
pub async fn search(
    tx: &mut TenantTx,
    pattern: &str,
    size: i64,
    offset: i64,
) -> Result<(Vec<NodeSummary>, i64), DbError> {
    let items = sqlx::query_as(
        "SELECT oid, name, module, kind FROM mib_nodes \
         WHERE name ILIKE $1 OR description ILIKE $1 \
         ORDER BY (name ILIKE $1) DESC, name, oid LIMIT $2 OFFSET $3",
    )
    .bind(pattern)
    .bind(size)
    .bind(offset)
    .fetch_all(&mut **tx)
    .await?;
    let total = sqlx::query_scalar(
        "SELECT count(*) FROM mib_nodes WHERE name ILIKE $1 OR description ILIKE $1",
    )
    .bind(pattern)
    .fetch_one(&mut **tx)
    .await?;
    Ok((items, total))
}

const KNOWN_COLUMNS: &str =
    "oid, name, module, kind, base_type, display_hint, enums, indexes, sizes";

/// The nodes at these OIDs (naming SNMP results: every prefix of theirs).
pub async fn known_at(tx: &mut TenantTx, oids: &[String]) -> Result<Vec<Known>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {KNOWN_COLUMNS} FROM mib_nodes WHERE oid = ANY($1)"
    )))
    .bind(oids)
    .fetch_all(&mut **tx)
    .await?)
}

/// The nodes with these names (a row's index objects).
pub async fn known_named(tx: &mut TenantTx, names: &[String]) -> Result<Vec<Known>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {KNOWN_COLUMNS} FROM mib_nodes WHERE name = ANY($1)"
    )))
    .bind(names)
    .fetch_all(&mut **tx)
    .await?)
}
