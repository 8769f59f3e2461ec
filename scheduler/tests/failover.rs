//! Two (then three) real `scheduler` processes over one database, a schedule
//! firing every second, and the leader killed with SIGKILL twice: every slot
//! makes at most one job, and no gap between fired slots exceeds a few seconds.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ferro_db::TenantCtx;
use ferro_tasks::JobKind;
use ferro_tasks::cron::MisfirePolicy;
use ferro_tasks::schedules::{self, ScheduleSpec};
use ferro_testkit::TestDb;
use uuid::Uuid;

struct Rig {
    db: TestDb,
    redis_prefix: String,
    broker_prefix: String,
}

impl Rig {
    fn scheduler(&self) -> Child {
        self.scheduler_with(&[])
    }

    fn scheduler_with(&self, extra: &[(&str, String)]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_scheduler"))
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(self.db.env_pairs())
            .env("REDIS_KEY_PREFIX", &self.redis_prefix)
            .env("BROKER_URL", "redis://127.0.0.1:6379/0")
            .env("BROKER_PREFIX", &self.broker_prefix)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    async fn slots(&self, schedule: Uuid) -> Vec<DateTime<Utc>> {
        let owner = self.db.owner().await;
        sqlx::query_scalar(
            "SELECT scheduled_for FROM jobs WHERE schedule_id = $1 ORDER BY scheduled_for",
        )
        .bind(schedule)
        .fetch_all(&owner)
        .await
        .unwrap()
    }

    /// Waits until the schedule has fired at least `n` jobs in all.
    async fn wait_for_slots(&self, schedule: Uuid, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.slots(schedule).await.len() < n {
            assert!(Instant::now() < deadline, "the schedule stopped firing");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn kill(child: &mut Child, signal: &str) {
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn killing_the_leader_loses_a_few_seconds_and_doubles_nothing() {
    ferro_telemetry::install_crypto_provider();
    let run = Uuid::new_v4().simple().to_string();
    let rig = Rig {
        db: TestDb::new().await,
        redis_prefix: format!("test:{run}:"),
        broker_prefix: format!("test-{}", &run[..12]),
    };
    let app = rig.db.app().await;
    let mut tx = app
        .begin(TenantCtx::new(rig.db.default_tenant(), None))
        .await
        .unwrap();
    let schedule = schedules::create(
        &mut tx,
        &ScheduleSpec {
            name: "every second".into(),
            cron: "* * * * * *".into(),
            timezone: "UTC".into(),
            kind: JobKind::Noop,
            device_id: None,
            params: serde_json::json!({}),
            enabled: true,
            misfire_policy: MisfirePolicy::FireOnce,
        },
        "api",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // A starts alone, so it leads; B and then C stand by.
    let mut a = rig.scheduler();
    rig.wait_for_slots(schedule.id, 2).await;
    let mut b = rig.scheduler();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rig.slots(schedule.id).await.len();
    kill(&mut a, "-KILL");
    rig.wait_for_slots(schedule.id, before + 3).await;

    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = rig.scheduler_with(&[(
        "SCHEDULER_METRICS_ADDR",
        format!("127.0.0.1:{metrics_port}"),
    )]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rig.slots(schedule.id).await.len();
    kill(&mut b, "-KILL");
    rig.wait_for_slots(schedule.id, before + 3).await;

    // The new leader's metrics, and `scheduler list`.
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("scheduler_leader 1"), "{metrics}");
    assert!(
        metrics.contains(r#"scheduler_fires_total{outcome="job"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("scheduler_fire_lag_seconds_bucket"),
        "{metrics}"
    );
    let list = Command::new(env!("CARGO_BIN_EXE_scheduler"))
        .arg("list")
        .envs(rig.db.env_pairs())
        .env("REDIS_KEY_PREFIX", &rig.redis_prefix)
        .output()
        .unwrap();
    assert!(list.status.success());
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(
        list.starts_with("default/every second  noop  [* * * * * *]  UTC"),
        "{list}"
    );
    assert_eq!(
        list.matches(", ").count(),
        2,
        "three next fire times: {list}"
    );
    kill(&mut c, "-TERM");

    let slots = rig.slots(schedule.id).await;
    let mut distinct = slots.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), slots.len(), "a slot fired twice: {slots:?}");
    for pair in slots.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= chrono::Duration::seconds(1) && gap <= chrono::Duration::seconds(4),
            "gap of {gap} between {} and {}: {slots:?}",
            pair[0],
            pair[1]
        );
    }
    let total_span = *slots.last().unwrap() - slots[0];
    assert!(
        slots.len() as i64 >= total_span.num_seconds() - 4,
        "{} fires over {total_span}: {slots:?}",
        slots.len()
    );
    assert!(
        slots.iter().all(|s| s.timestamp_subsec_millis() == 0),
        "slots are whole seconds"
    );
}
