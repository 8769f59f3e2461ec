//! The job kinds against real peers: devices.export, snmp.get and
//! snmp.walk against snmpd, email.send against an SMTP server,
//! sessions.cleanup and devices.poll across tenants.

use crate::support::*;
use ferro_db::TenantCtx;
use ferro_tasks::JobKind;
use ferro_testkit::SnmpAgent;
use serde_json::json;
use uuid::Uuid;

on_both_brokers!(
    devices_export_produces_csv_without_secrets,
    snmp_get_reads_sys_descr_from_a_real_agent,
    snmp_walk_reads_the_system_subtree,
    snmp_walks_by_getbulk_and_getnext_agree,
    an_agent_that_does_not_answer_fails_the_job_after_its_retries,
    email_send_delivers_to_a_real_smtp_server,
    email_send_fails_after_retries_when_the_server_is_unreachable,
);

async fn devices_export_produces_csv_without_secrets(backend: Backend) {
    let rig = Rig::start_on(backend, None).await;
    let app = rig.db.app().await;
    let mut tx = app
        .begin(TenantCtx::new(rig.db.default_tenant(), None))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO devices (tenant_id, name, protocol, host, port, tags, snmp_version, snmp_community) VALUES \
         (app_current_tenant(), 'core, main', 'snmp', '10.0.0.1', 161, '{core}', 'v2c', 'sekret'), \
         (app_current_tenant(), 'web', 'http', 'example.com', 80, '{}', NULL, NULL)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let id = rig.submit(JobKind::DevicesExport, None, json!({})).await;
    rig.wait_for(id, &["succeeded"], 10).await;
    let result = &rig.results(id).await[0];
    assert_eq!(result["rows"], 2);
    let csv = result["csv"].as_str().unwrap();
    assert!(csv.starts_with("id,name,protocol,host,port,tags,status\n"));
    assert!(csv.contains("\"core, main\",snmp,10.0.0.1,161,core,unknown"));
    assert!(!csv.contains("sekret"));
    rig.stop().await;
}

async fn snmp_get_reads_sys_descr_from_a_real_agent(backend: Backend) {
    let agent = SnmpAgent::start();
    let rig = Rig::start_on(backend, None).await;
    let device = snmp_device(&rig, agent.port, SnmpAgent::COMMUNITY).await;
    let id = rig
        .submit(
            JobKind::SnmpGet,
            Some(device),
            json!({"oids": ["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.3.0"]}),
        )
        .await;
    rig.wait_for(id, &["succeeded"], 15).await;
    let values = rig.results(id).await[0]["values"].clone();
    assert_eq!(
        values[0],
        json!({"oid": "1.3.6.1.2.1.1.1.0", "type": "string", "value": "Ferrostack test agent"})
    );
    assert_eq!(values[1]["type"], "timeticks");
    rig.stop().await;
}

async fn snmp_walk_reads_the_system_subtree(backend: Backend) {
    let agent = SnmpAgent::start();
    let rig = Rig::start_on(backend, None).await;
    let device = snmp_device(&rig, agent.port, SnmpAgent::COMMUNITY).await;
    let id = rig
        .submit(
            JobKind::SnmpWalk,
            Some(device),
            json!({"oid": "1.3.6.1.2.1.1"}),
        )
        .await;
    rig.wait_for(id, &["succeeded"], 15).await;
    let result = &rig.results(id).await[0];
    assert!(result["rows"].as_u64().unwrap() >= 5, "{result}");
    let values = result["values"].as_array().unwrap();
    assert!(
        values
            .iter()
            .all(|v| v["oid"].as_str().unwrap().starts_with("1.3.6.1.2.1.1."))
    );
    assert!(values.iter().any(|v| v["value"] == "test-lab"));
    assert_eq!(result["truncated"], false);
    rig.stop().await;
}

/// GETBULK on v2c (any `max_repetitions`) and GETNEXT on v1 walk the same
/// values; `max_rows` cuts a bulk answer where it says.
async fn snmp_walks_by_getbulk_and_getnext_agree(backend: Backend) {
    let agent = SnmpAgent::start();
    let rig = Rig::start_on(backend, None).await;
    let v2c = snmp_device(&rig, agent.port, SnmpAgent::COMMUNITY).await;
    let app = rig.db.app().await;
    let mut tx = app
        .begin(TenantCtx::new(rig.db.default_tenant(), None))
        .await
        .unwrap();
    sqlx::query("INSERT INTO devices (tenant_id, name, protocol, host, port, snmp_version, snmp_community) \
         SELECT tenant_id, 'v1-twin', protocol, host, port, 'v1', snmp_community FROM devices WHERE id = $1")
        .bind(v2c)
        .execute(&mut *tx)
        .await
        .unwrap();
    let v1: Uuid = sqlx::query_scalar("SELECT id FROM devices WHERE name = 'v1-twin'")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let oids = |result: &serde_json::Value| -> Vec<String> {
        result["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["oid"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut walks = Vec::new();
    for (device, params) in [
        (v2c, json!({"oid": "1.3.6.1.2.1.1"})),
        (v2c, json!({"oid": "1.3.6.1.2.1.1", "max_repetitions": 1})),
        (v2c, json!({"oid": "1.3.6.1.2.1.1", "max_repetitions": 7})),
        (v1, json!({"oid": "1.3.6.1.2.1.1"})),
    ] {
        let id = rig.submit(JobKind::SnmpWalk, Some(device), params).await;
        rig.wait_for(id, &["succeeded"], 15).await;
        walks.push(oids(&rig.results(id).await[0]));
    }
    assert!(walks[0].len() >= 5, "{:?}", walks[0]);
    for other in &walks[1..] {
        assert_eq!(other, &walks[0]);
    }
    let id = rig
        .submit(
            JobKind::SnmpWalk,
            Some(v2c),
            json!({"oid": "1.3.6.1.2.1.1", "max_repetitions": 10, "max_rows": 3}),
        )
        .await;
    rig.wait_for(id, &["succeeded"], 15).await;
    let cut = &rig.results(id).await[0];
    assert_eq!(cut["rows"], 3);
    assert_eq!(cut["truncated"], true);
    assert_eq!(oids(cut), walks[0][..3]);
    rig.stop().await;
}

async fn an_agent_that_does_not_answer_fails_the_job_after_its_retries(backend: Backend) {
    let agent = SnmpAgent::start();
    let rig = Rig::start_on(backend, None).await;
    // A v2c agent does not answer a wrong community: every attempt times out.
    let device = snmp_device(&rig, agent.port, "wrong-community").await;
    let id = rig
        .submit(
            JobKind::SnmpGet,
            Some(device),
            json!({"oids": ["1.3.6.1.2.1.1.1.0"]}),
        )
        .await;
    let job = rig.wait_for(id, &["failed"], 40).await;
    assert_eq!(job.attempts, job.max_attempts);
    assert!(job.error.unwrap().contains("no SNMP answer"));
    rig.stop().await;
}

#[tokio::test]
async fn sessions_cleanup_purges_old_logs_in_every_tenant() {
    let rig = Rig::start().await;
    let acme = rig.db.create_tenant("acme").await;
    let owner = rig.db.owner().await;
    for (tenant, age) in [(rig.db.default_tenant(), 100), (acme, 100), (acme, 10)] {
        sqlx::query(
            "INSERT INTO login_logs (tenant_id, username, outcome, created_at) \
             VALUES ($1, 'x', 'failure', now() - make_interval(days => $2))",
        )
        .bind(tenant)
        .bind(age)
        .execute(&owner)
        .await
        .unwrap();
    }
    sqlx::query("INSERT INTO login_logs (username, outcome, created_at) VALUES ('nobody', 'failure', now() - interval '400 days')")
        .execute(&owner)
        .await
        .unwrap();
    let id = rig
        .submit(
            JobKind::SessionsCleanup,
            None,
            json!({"retention_days": 30}),
        )
        .await;
    rig.wait_for(id, &["succeeded"], 10).await;
    let result = &rig.results(id).await[0];
    assert_eq!(result["login_logs_deleted"], 3, "{result}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM login_logs")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(left, 1, "the 10-day-old row stays");
    rig.stop().await;
}

async fn email_send_delivers_to_a_real_smtp_server(backend: Backend) {
    let sink = ferro_testkit::SmtpSink::start();
    let smtp = worker::SmtpConfig::from_env(&ferro_config::Env::from_pairs([
        ("SMTP_URL", format!("smtp://127.0.0.1:{}", sink.port)),
        ("SMTP_FROM", "Ferrostack <noreply@example.com>".to_owned()),
    ]))
    .unwrap();
    let rig = Rig::start_on(backend, smtp).await;
    let id = rig
        .submit(
            JobKind::EmailSend,
            None,
            json!({"to": "ops@example.com", "subject": "Disk full", "body": "core-1 is at 99%"}),
        )
        .await;
    rig.wait_for(id, &["succeeded"], 15).await;
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert!(m.contains("Subject: Disk full"), "{m}");
    assert!(m.contains("To: ops@example.com"), "{m}");
    assert!(m.contains("From: Ferrostack <noreply@example.com>"), "{m}");
    assert!(m.contains("core-1 is at 99%"), "{m}");
    assert_eq!(rig.results(id).await[0]["smtp_code"], "250");
    rig.stop().await;
}

async fn email_send_fails_after_retries_when_the_server_is_unreachable(backend: Backend) {
    let smtp = worker::SmtpConfig::from_env(&ferro_config::Env::from_pairs([(
        "SMTP_URL",
        "smtp://127.0.0.1:1",
    )]))
    .unwrap();
    let rig = Rig::start_on(backend, smtp).await;
    let id = rig
        .submit(
            JobKind::EmailSend,
            None,
            json!({"to": "ops@example.com", "subject": "s", "body": "b"}),
        )
        .await;
    let job = rig.wait_for(id, &["failed"], 30).await;
    assert_eq!(job.attempts, job.max_attempts);
    assert!(job.error.unwrap().contains("sending failed"));
    rig.stop().await;
}

#[tokio::test]
async fn devices_poll_marks_answering_devices_up_and_silent_ones_down_in_every_tenant() {
    let agent = SnmpAgent::start();
    let rig = Rig::start().await;
    let here = snmp_device(&rig, agent.port, SnmpAgent::COMMUNITY).await;
    let silent = snmp_device(&rig, agent.port, "wrong-community").await;
    // A device of another tenant is polled too (platform maintenance).
    let acme = rig.db.create_tenant("acme").await;
    let owner = rig.db.owner().await;
    let elsewhere: Uuid = sqlx::query_scalar(
        "INSERT INTO devices (tenant_id, name, protocol, host, port, snmp_version, snmp_community) \
         VALUES ($1, 'acme-agent', 'snmp', '127.0.0.1', $2, 'v2c', $3) RETURNING id",
    )
    .bind(acme)
    .bind(i32::from(agent.port))
    .bind(SnmpAgent::COMMUNITY)
    .fetch_one(&owner)
    .await
    .unwrap();
    let id = rig
        .submit(JobKind::DevicesPoll, None, json!({"concurrency": 4}))
        .await;
    rig.wait_for(id, &["succeeded"], 20).await;
    assert_eq!(
        rig.results(id).await[0],
        json!({"polled": 3, "up": 2, "down": 1})
    );
    let status = |device: Uuid| {
        let owner = owner.clone();
        async move {
            sqlx::query_as::<_, (String, bool)>(
                "SELECT status, last_seen_at IS NOT NULL FROM devices WHERE id = $1",
            )
            .bind(device)
            .fetch_one(&owner)
            .await
            .unwrap()
        }
    };
    assert_eq!(status(here).await, ("up".into(), true));
    assert_eq!(status(elsewhere).await, ("up".into(), true));
    assert_eq!(status(silent).await, ("down".into(), false));
    rig.stop().await;
}
