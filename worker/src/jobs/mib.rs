//! `mib.compile`: compiles the tenant's MIB modules with those in the
//! uploaded files the job names, and replaces the tenant's OID tree with
//! the result. One compile of a tenant at a time: the whole job runs in
//! one transaction holding the tenant's MIB lock, so two uploads at once
//! both end up in the tree.

use ferro_mibs::compile::{compile as compile_modules, split_upload};
use ferro_tasks::kinds::MibCompileParams;
use serde_json::{Value, json};

use super::context::{JobContext, JobError};

pub async fn compile(p: MibCompileParams, job: &JobContext) -> Result<Vec<Value>, JobError> {
    let mut tx = job.db.begin(job.ctx).await?;
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('ferrostack:mibs:' || $1::text, 0))",
    )
    .bind(job.ctx.tenant_id)
    .execute(&mut *tx)
    .await
    .map_err(ferro_db::DbError::from)?;
    let stored = ferro_mibs::records::stored_sources(&mut tx).await?;
    let mut new = Vec::new();
    let mut not_mibs = Vec::new();
    for id in &p.file_ids {
        let Some(file) = ferro_files::records::get(&mut tx, *id).await? else {
            return Err(JobError::Permanent(format!(
                "file {id} does not exist in this tenant"
            )));
        };
        let path = job.files.path_of(job.ctx.tenant_id, *id);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| JobError::transient(format!("cannot read file {id}: {e}")))?;
        match split_upload(&file.name, &bytes, Some(*id)) {
            Ok(modules) => new.extend(modules),
            Err(not_a_mib) => not_mibs.push(*not_a_mib),
        }
    }
    job.progress(20).await;
    // Parsing and resolving is CPU work: off the async threads.
    let mut compiled = tokio::task::spawn_blocking(move || compile_modules(stored, new))
        .await
        .map_err(|e| JobError::Permanent(format!("the MIB compiler stopped: {e}")))?
        .map_err(JobError::Permanent)?;
    compiled.modules.extend(not_mibs);
    job.progress(80).await;
    ferro_mibs::records::save(&mut tx, &compiled).await?;
    tx.commit().await?;
    let modules: Vec<Value> = compiled
        .modules
        .iter()
        .map(|m| json!({"name": m.name, "status": m.status, "objects": m.objects}))
        .collect();
    tracing::info!(
        modules = modules.len(),
        nodes = compiled.nodes.len(),
        "MIBs compiled"
    );
    Ok(vec![
        json!({"modules": modules, "nodes": compiled.nodes.len()}),
    ])
}
