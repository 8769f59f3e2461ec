//! The outside load generators: pgbench for the ceiling, wrk for
//! `POST /api/v1/jobs`.

use std::process::Command;
use uuid::Uuid;

use super::setup::Setup;

/// The single-submission transaction the api ran before submissions shared
/// commits, as the application role: the tenant and user `set_config`, the
/// job, its outbox record, one commit.
const SUBMISSION: &str = r#"BEGIN;
SELECT set_config('app.tenant_id', :tenant, true), set_config('app.user_id', :user, true);
INSERT INTO jobs (tenant_id, kind, params, max_attempts, created_by) VALUES (app_current_tenant(), 'noop', '{}', 3, app_current_user()) RETURNING id \gset
INSERT INTO job_outbox (tenant_id, job_id, payload, available_at) VALUES (app_current_tenant(), :id, '{}', now() + interval '30 seconds');
COMMIT;
"#;

fn scratch(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("jobs-bench-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// The ceiling: pgbench running [`SUBMISSION`] at `clients` clients for
/// `seconds`, `-M prepared`, no TLS. Transactions per second.
pub(super) fn pgbench_ceiling(setup: &Setup, tenant: Uuid, user: Uuid) -> f64 {
    let script = scratch("submission.sql", SUBMISSION);
    let out = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-j", "2"])
        .args(["-c", &setup.conns.to_string()])
        .args(["-T", &setup.seconds.to_string()])
        .args([
            "-D",
            &format!("tenant={tenant}"),
            "-D",
            &format!("user={user}"),
        ])
        .arg("-f")
        .arg(&script)
        .arg(&setup.app_url)
        .env("PGSSLMODE", "disable")
        .output()
        .expect("pgbench (Debian's postgresql-client) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench's output: {text}"))
}

/// What wrk measured.
pub(super) struct Wrk {
    pub(super) per_s: f64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
}

/// wrk's latency figure (`812.00us`, `1.23ms`, `1.01s`) in milliseconds.
fn millis(figure: &str) -> f64 {
    let (number, unit) = figure.split_at(figure.find(|c: char| c.is_alphabetic()).unwrap());
    let n: f64 = number.parse().unwrap();
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        other => panic!("wrk latency unit {other}"),
    }
}

/// `POST /api/v1/jobs` (noop) with wrk -t2 at `conns` connections for
/// `seconds`. Every answer must be 202.
pub(super) fn wrk_post(setup: &Setup, token: &str) -> Wrk {
    let script = scratch(
        "post.lua",
        &format!(
            "wrk.method = \"POST\"\nwrk.body = '{{\"kind\":\"noop\"}}'\n\
             wrk.headers[\"Content-Type\"] = \"application/json\"\n\
             wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"
        ),
    );
    let out = Command::new("wrk")
        .args(["-t2", "--latency"])
        .args(["-c", &setup.conns.to_string()])
        .args(["-d", &format!("{}s", setup.seconds)])
        .arg("-s")
        .arg(&script)
        .arg(setup.url("jobs"))
        .output()
        .expect("wrk (Debian's wrk) runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "wrk: {text}");
    assert!(
        !text.contains("Non-2xx"),
        "POST /api/v1/jobs answered other than 202: {text}"
    );
    let percentile = |p: &str| {
        text.lines()
            .map(str::split_whitespace)
            .find_map(|mut words| (words.next() == Some(p)).then(|| words.next()).flatten())
            .map(millis)
            .unwrap_or_else(|| panic!("no {p} in wrk's output: {text}"))
    };
    Wrk {
        per_s: text
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no Requests/sec in wrk's output: {text}")),
        p50_ms: percentile("50%"),
        p99_ms: percentile("99%"),
    }
}
