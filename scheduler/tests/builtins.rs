//! The built-in schedules: the shipped `deploy/schedules.json` parses, and
//! syncing it into tenant `default` is idempotent, disables built-ins removed
//! from the file, and never touches a schedule made through the api.

use ferro_db::TenantCtx;
use ferro_tasks::schedules::{self, SyncReport};
use ferro_testkit::TestDb;

#[test]
fn the_shipped_file_has_the_required_built_ins() {
    let text = std::fs::read_to_string("../deploy/schedules.json").unwrap();
    let specs = schedules::parse_config(&text).unwrap();
    let kinds: Vec<(&str, &str, &str)> = specs
        .iter()
        .map(|s| (s.kind.as_str(), s.cron.as_str(), s.timezone.as_str()))
        .collect();
    assert!(
        kinds.contains(&("sessions.cleanup", "0 0 * * *", "UTC")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("devices.poll", "*/5 * * * *", "UTC")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("jobs.prune", "17 * * * *", "UTC")),
        "{kinds:?}"
    );
}

#[test]
fn a_bad_file_is_refused_naming_the_schedule_and_field() {
    let err = schedules::parse_config(
        r#"{"schedules": [{"name": "x", "cron": "0 0 * * *", "kind": "launch.rockets"}]}"#,
    )
    .unwrap_err();
    assert_eq!(err, r#"schedule "x": kind is not a job kind"#);
    let err = schedules::parse_config(
        r#"{"schedules": [{"name": "y", "cron": "0 0 * *", "kind": "noop"}]}"#,
    )
    .unwrap_err();
    assert!(
        err.starts_with(r#"schedule "y": cron has 4 fields"#),
        "{err}"
    );
    let err = schedules::parse_config(
        r#"{"schedules": [{"name": "z", "cron": "0 0 * * *", "kind": "snmp.get", "params": {"oids": ["1.3.6.1.2.1.1.1.0"]}}]}"#,
    )
    .unwrap_err();
    assert!(err.contains("needs a device"), "{err}");
    assert!(schedules::parse_config(r#"{"schedules": [], "extra": 1}"#).is_err());
}

#[tokio::test]
async fn syncing_is_idempotent_disables_removed_built_ins_and_spares_api_schedules() {
    let db = TestDb::new().await;
    let app = db.app().await;
    let tenant = app.scheduler_default_tenant().await.unwrap().unwrap();
    assert_eq!(tenant, db.default_tenant());
    let ctx = TenantCtx::new(tenant, None);
    let file = |extra: &str| {
        format!(
            r#"{{"schedules": [
                {{"name": "cleanup", "cron": "0 0 * * *", "kind": "sessions.cleanup"}}{extra}
            ]}}"#
        )
    };
    let two = schedules::parse_config(&file(
        r#", {"name": "poll", "cron": "*/5 * * * *", "kind": "devices.poll"}"#,
    ))
    .unwrap();

    // An api schedule holds a name the file also uses.
    let mut tx = app.begin(ctx).await.unwrap();
    let mut taken = two[0].clone();
    taken.name = "taken".into();
    schedules::create(&mut tx, &taken, "api").await.unwrap();
    tx.commit().await.unwrap();
    let mut with_conflict = two.clone();
    with_conflict.push(taken.clone());

    let mut tx = app.begin(ctx).await.unwrap();
    let report = schedules::sync_config(&mut tx, &with_conflict)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        report,
        SyncReport {
            upserted: 2,
            disabled: 0,
            conflicts: vec!["taken".into()]
        }
    );

    let mut tx = app.begin(ctx).await.unwrap();
    let (before, _) = schedules::list(&mut tx, 100, 0).await.unwrap();
    let report = schedules::sync_config(&mut tx, &two).await.unwrap();
    let (after, _) = schedules::list(&mut tx, 100, 0).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(report.upserted, 2);
    let next = |list: &[schedules::Schedule], name: &str| {
        list.iter().find(|s| s.name == name).unwrap().next_run_at
    };
    assert_eq!(
        next(&before, "poll"),
        next(&after, "poll"),
        "unchanged timing keeps its slot"
    );

    let one = schedules::parse_config(&file("")).unwrap();
    let mut tx = app.begin(ctx).await.unwrap();
    let report = schedules::sync_config(&mut tx, &one).await.unwrap();
    let (all, _) = schedules::list(&mut tx, 100, 0).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(report.disabled, 1);
    let poll = all.iter().find(|s| s.name == "poll").unwrap();
    assert!(!poll.enabled && poll.next_run_at.is_none());
    let taken = all.iter().find(|s| s.name == "taken").unwrap();
    assert_eq!((taken.source.as_str(), taken.enabled), ("api", true));
}
