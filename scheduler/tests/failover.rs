//! Two (then three) real `scheduler` processes over one database, a schedule
//! firing every second created through the real api, the leader killed with
//! SIGKILL twice and a standby once: every slot makes at most one job, and
//! no gap between fired slots exceeds a few seconds.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ferro_testkit::TestDb;
use serde_json::{Value, json};
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
    // The schedule comes through the real api, as a client would make it.
    let env = rig
        .db
        .env()
        .with("REDIS_KEY_PREFIX", rig.redis_prefix.clone())
        .with("BROKER_URL", "redis://127.0.0.1:6379/0")
        .with("BROKER_PREFIX", rig.broker_prefix.clone())
        .with("JWT_SECRET", "failover-secret-failover-secret-failover!");
    let state = api::build_state(api::ApiConfig::from_env(&env).unwrap())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(api::serve(listener, state, std::future::pending()));
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": ferro_testkit::ADMIN_USERNAME, "password": ferro_testkit::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    let created = http
        .post(format!("{base}/api/v1/schedules"))
        .bearer_auth(token)
        .json(
            &json!({"name": "every second", "cron": "* * * * * *", "timezone": "UTC",
                      "kind": "noop", "params": {}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let schedule: Uuid = created["id"].as_str().unwrap().parse().unwrap();

    // A starts alone, so it leads; B and then C stand by.
    let mut a = rig.scheduler();
    rig.wait_for_slots(schedule, 2).await;
    let mut b = rig.scheduler();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rig.slots(schedule).await.len();
    kill(&mut a, "-KILL");
    rig.wait_for_slots(schedule, before + 3).await;

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
    let before = rig.slots(schedule).await.len();
    kill(&mut b, "-KILL");
    rig.wait_for_slots(schedule, before + 3).await;

    // Killing a standby changes nothing.
    let mut d = rig.scheduler();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rig.slots(schedule).await.len();
    kill(&mut d, "-KILL");
    rig.wait_for_slots(schedule, before + 2).await;

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

    let slots = rig.slots(schedule).await;
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

#[test]
fn unknown_arguments_start_nothing() {
    for (args, code) in [(&["--help"][..], 0), (&["lsit"][..], 2)] {
        let out = Command::new(env!("CARGO_BIN_EXE_scheduler"))
            .args(args)
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}");
    }
}

/// `scheduler ping --pid N` takes a process id (what the heartbeat module's
/// own parser used to check): a missing or non-numeric one stops it with 2,
/// a real one is looked for (none beats under this test's Redis prefix: 1).
#[test]
fn the_ping_pid_is_a_process_id() {
    let prefix = format!("ping-test-{}:", std::process::id());
    for (args, code) in [
        (&["ping", "--pid"][..], 2),
        (&["ping", "--pid", "x"][..], 2),
        (&["ping", "--pid", "42"][..], 1),
        (&["ping"][..], 1),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_scheduler"))
            .args(args)
            .env("REDIS_KEY_PREFIX", &prefix)
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}");
    }
}
