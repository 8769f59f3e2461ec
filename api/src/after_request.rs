//! The writes that follow a request: its audit row, and the outbox mark of a
//! job it published.
//!
//! Both are small and come in bursts under load, so they go through a
//! [`Coalescer`]: the writes of the requests that finish while earlier ones
//! are in the database share one transaction per tenant and user, one
//! multi-row `INSERT` for the audit rows and one `UPDATE` for the marks. A
//! request still waits for its own writes to commit before it answers, so an
//! answered request always has its audit row.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use ferro_db::coalesce::{self, Coalescer};
use ferro_db::{Db, DbError, TenantCtx, TenantTx};
use uuid::Uuid;

use crate::auth::Principal;

/// Most writes in one batch.
const MAX_BATCH: usize = 256;
/// Batches in the database at once.
const IN_FLIGHT: usize = 2;
/// The writes come after the answers, so no client waits on them; still,
/// they are taken at once (see [`Coalescer::spawn`]).
const LINGER: std::time::Duration = std::time::Duration::ZERO;

/// The audit row of one mutating request in the making: what the request
/// said of itself (taken before the handler runs), and the caller, which
/// authentication sets, so that the row is written even when the handler
/// then panics or runs out of time. A handler that writes the row itself,
/// in its own transaction ([`AuditCaller::row`]), says so
/// ([`AuditCaller::written`]) and the middleware writes none.
#[derive(Clone)]
pub struct AuditCaller(Arc<Draft>);

struct Draft {
    principal: OnceLock<Principal>,
    written: AtomicBool,
    method: String,
    route: String,
    ip: Option<IpAddr>,
    user_agent: Option<String>,
    request_id: String,
    started: Instant,
}

impl AuditCaller {
    /// A request's draft: what it said of itself, from its start.
    pub fn new(
        method: &str,
        route: &str,
        ip: Option<IpAddr>,
        user_agent: Option<&str>,
        request_id: &str,
        started: Instant,
    ) -> Self {
        Self(Arc::new(Draft {
            principal: OnceLock::new(),
            written: AtomicBool::new(false),
            method: method.to_owned(),
            route: route.to_owned(),
            ip,
            user_agent: user_agent.map(|s| s.chars().take(512).collect()),
            request_id: request_id.to_owned(),
            started,
        }))
    }

    pub fn set(&self, principal: &Principal) {
        let _ = self.0.principal.set(principal.clone());
    }

    /// The caller, once authentication has set it.
    pub fn get(&self) -> Option<&Principal> {
        self.0.principal.get()
    }

    /// The row of this request answered with `status` now, if a caller is
    /// known.
    pub fn row(&self, status: u16) -> Option<AuditRow> {
        let principal = self.get()?;
        let latency_ms = self.0.started.elapsed().as_millis().min(i32::MAX as u128) as i32;
        Some(AuditRow {
            user_id: principal.user_id,
            method: self.0.method.clone(),
            route: self.0.route.clone(),
            status: status as i16,
            latency_ms,
            ip: self.0.ip,
            user_agent: self.0.user_agent.clone(),
            request_id: Some(self.0.request_id.clone()),
        })
    }

    /// The handler committed the row itself.
    pub fn written(&self) {
        self.0.written.store(true, Ordering::Release);
    }

    /// Whether the handler committed the row itself.
    pub fn is_written(&self) -> bool {
        self.0.written.load(Ordering::Acquire)
    }
}

/// One row of `audit_logs`, for the tenant of its request.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub user_id: Uuid,
    pub method: String,
    pub route: String,
    pub status: i16,
    pub latency_ms: i32,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

enum Write {
    Audit(AuditRow),
    /// The job's outbox record (its id) was published by the request itself.
    Published(i64),
}

/// The api's coalesced writes after a request.
#[derive(Clone)]
pub struct AfterRequest {
    batches: Coalescer<(TenantCtx, Write), Result<(), DbError>>,
}

impl AfterRequest {
    /// Starts the batching task on the current runtime.
    pub fn new(db: Db) -> Self {
        let batches = Coalescer::spawn(
            "after-request",
            MAX_BATCH,
            IN_FLIGHT,
            LINGER,
            move |writes| {
                let db = db.clone();
                async move {
                    coalesce::by_tenant(
                        &writes,
                        |(ctx, _)| *ctx,
                        |ctx, group| {
                            let writes: Vec<&Write> = group.into_iter().map(|(_, w)| w).collect();
                            write_group(&db, ctx, writes)
                        },
                    )
                    .await
                }
            },
        );
        Self { batches }
    }

    /// Writes the audit row in the tenant of `ctx`; committed when this returns.
    pub async fn audit(&self, ctx: TenantCtx, row: AuditRow) -> Result<(), DbError> {
        self.batches.record((ctx, Write::Audit(row))).await
    }

    /// Marks the outbox record published, so the relay skips it; committed
    /// when this returns.
    pub async fn published(&self, ctx: TenantCtx, outbox_id: i64) -> Result<(), DbError> {
        self.batches
            .record((ctx, Write::Published(outbox_id)))
            .await
    }
}

/// One transaction: every audit row of the group in one statement, then every
/// outbox mark in another.
async fn write_group(db: &Db, ctx: TenantCtx, writes: Vec<&Write>) -> Result<Vec<()>, DbError> {
    let mut rows = Vec::new();
    let mut published = Vec::new();
    for write in &writes {
        match write {
            Write::Audit(row) => rows.push(row),
            Write::Published(outbox_id) => published.push(*outbox_id),
        }
    }
    let mut tx = db.begin(ctx).await?;
    if !rows.is_empty() {
        insert_audit_rows(&mut tx, &rows).await?;
    }
    if !published.is_empty() {
        ferro_tasks::jobs::mark_published(&mut tx, &published).await?;
    }
    tx.commit().await?;
    Ok(vec![(); writes.len()])
}

/// Inserts the rows, in order, into the transaction's tenant. Each row is
/// stamped with the moment it is written (`clock_timestamp()`, not the
/// transaction's start), so rows of one batch keep their order by time.
pub(crate) async fn insert_audit_rows(
    tx: &mut TenantTx,
    rows: &[&AuditRow],
) -> Result<(), DbError> {
    let users: Vec<Uuid> = rows.iter().map(|r| r.user_id).collect();
    let methods: Vec<&str> = rows.iter().map(|r| r.method.as_str()).collect();
    let routes: Vec<&str> = rows.iter().map(|r| r.route.as_str()).collect();
    let statuses: Vec<i16> = rows.iter().map(|r| r.status).collect();
    let latencies: Vec<i32> = rows.iter().map(|r| r.latency_ms).collect();
    let ips: Vec<Option<String>> = rows.iter().map(|r| r.ip.map(|ip| ip.to_string())).collect();
    let agents: Vec<Option<&str>> = rows.iter().map(|r| r.user_agent.as_deref()).collect();
    let request_ids: Vec<Option<&str>> = rows.iter().map(|r| r.request_id.as_deref()).collect();
    sqlx::query(
        "INSERT INTO audit_logs (tenant_id, user_id, method, route, status, latency_ms, ip, user_agent, \
                                 request_id, created_at) \
         SELECT app_current_tenant(), u.user_id, u.method, u.route, u.status, u.latency_ms, u.ip::inet, \
                u.user_agent, u.request_id, clock_timestamp() \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int2[], $5::int4[], $6::text[], $7::text[], $8::text[]) \
              WITH ORDINALITY AS u(user_id, method, route, status, latency_ms, ip, user_agent, request_id, n) \
         ORDER BY u.n",
    )
    .bind(users)
    .bind(methods)
    .bind(routes)
    .bind(statuses)
    .bind(latencies)
    .bind(ips)
    .bind(agents)
    .bind(request_ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
