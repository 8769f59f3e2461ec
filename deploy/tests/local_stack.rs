//! `deploy/local/up.sh` running the whole stack natively, as a user runs it:
//! migrate, api, worker, scheduler and nginx in front, on ports, a database,
//! a Redis key prefix and broker names of the test's own. Through nginx:
//! login, a per-second schedule, a job whose events stream unbuffered, the
//! monitor. Then every metric the alert rules and the dashboard use must be
//! exported, and Ctrl-C (SIGINT to the process group, as a terminal sends
//! it) must leave nothing running.
//!
//! The binaries are the debug ones `cargo nextest run --workspace` has just
//! built beside this test; if they are missing, up.sh builds them.

use ferro_testkit::free_port;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferro_deploy::{
    dashboard_expressions, metrics_exposed, metrics_in_promql, read, repo_root, rule_expressions,
};
use ferro_testkit::TestDb;
use futures_util::StreamExt;
use serde_json::{Value, json};

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// The directory holding the debug binaries built with this test, if all
/// four are there.
fn built_binaries() -> Option<PathBuf> {
    let dir = std::env::current_exe()
        .ok()?
        .parent()?
        .parent()?
        .to_path_buf();
    ["api", "worker", "scheduler", "migrate"]
        .iter()
        .all(|b| dir.join(b).is_file())
        .then_some(dir)
}

struct Ports {
    api: u16,
    nginx: u16,
    worker_metrics: u16,
    scheduler_metrics: u16,
}

struct Stack {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    ports: Ports,
    run_dir: PathBuf,
    stopped: bool,
}

impl Stack {
    fn start(db: &TestDb, ports: Ports) -> Self {
        Self::start_with(db, ports, &[])
    }

    /// Starts up.sh; `extra` settings go last, over the test's own.
    fn start_with(db: &TestDb, ports: Ports, extra: &[(&str, &str)]) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let run_dir = std::env::temp_dir().join(format!("ferro-up-{id}"));
        let mut command = Command::new(repo_root().join("deploy/local/up.sh"));
        command
            .current_dir(repo_root())
            .envs(db.env_pairs())
            .env("APP_ENV", "development")
            .env("REDIS_URL", "redis://127.0.0.1:6379/0")
            .env("REDIS_KEY_PREFIX", format!("uptest:{id}:"))
            .env("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
            .env("BROKER_PREFIX", format!("uptest-{id}"))
            .env("JWT_SECRET", "up-test-secret-up-test-secret-up-test!")
            .env("LOG_FORMAT", "json")
            .env("PORT", ports.api.to_string())
            .env("NGINX_PORT", ports.nginx.to_string())
            .env(
                "WORKER_METRICS_ADDR",
                format!("127.0.0.1:{}", ports.worker_metrics),
            )
            .env(
                "SCHEDULER_METRICS_ADDR",
                format!("127.0.0.1:{}", ports.scheduler_metrics),
            )
            .env("FERRO_RUN_DIR", &run_dir)
            .env("FERRO_ENSURE_SERVICES", "0")
            .env("FERRO_PROFILE", "dev")
            .env("FERRO_START_TIMEOUT", "60")
            .env_remove("TLS_CERT")
            .env_remove("TLS_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .envs(extra.iter().copied())
            // Its own process group, like a shell job: SIGINT goes to all of it.
            .process_group(0);
        if let Some(bins) = built_binaries() {
            command.env("FERRO_BIN_DIR", bins);
        }
        let mut child = command.spawn().expect("deploy/local/up.sh starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for reader in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err) as Box<dyn std::io::Read + Send>,
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Self {
            child,
            lines,
            ports,
            run_dir,
            stopped: false,
        }
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn has_line(&self, what: impl Fn(&str) -> bool) -> bool {
        self.lines.lock().unwrap().iter().any(|l| what(l))
    }

    /// Waits for up.sh to say the stack is up; panics with its output if it
    /// exits or takes too long.
    fn wait_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(240);
        while !self.has_line(|l| l.starts_with("[up] Ferrostack is up")) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("up.sh exited with {status}:\n{}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "the stack did not come up:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.stopped = true;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "up.sh did not exit:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `signal` to the whole process group, as a terminal's Ctrl-C does.
    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .status();
    }

    /// True while any process of the group is alive.
    fn group_alive(&self) -> bool {
        Command::new("kill")
            .args(["-0", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn nginx(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.nginx)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("up.sh output:\n{}", self.output());
        }
        if !self.stopped || self.group_alive() {
            self.signal_group("-KILL");
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

async fn login(client: &reqwest::Client, stack: &Stack) -> String {
    let res = client
        .post(stack.nginx("/api/v1/auth/login"))
        .json(&json!({"username": ferro_testkit::ADMIN_USERNAME, "password": ferro_testkit::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// `GET url` with the bearer token, as JSON.
async fn get_json(client: &reqwest::Client, url: String, token: &str) -> Value {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `POST url` with the bearer token and a JSON body, as JSON.
async fn post_json(client: &reqwest::Client, url: String, token: &str, body: Value) -> Value {
    client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn scrape(client: &reqwest::Client, port: u16) -> String {
    let res = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn up_sh_runs_the_whole_stack_behind_nginx_and_ctrl_c_stops_all_of_it() {
    let db = TestDb::new().await;
    let ports = Ports {
        api: free_port(),
        nginx: free_port(),
        worker_metrics: free_port(),
        scheduler_metrics: free_port(),
    };
    let mut stack = Stack::start(&db, ports);
    tokio::task::block_in_place(|| stack.wait_up());
    let client = reqwest::Client::new();

    let root = client.get(stack.nginx("/")).send().await.unwrap();
    assert_eq!(root.status(), 200);
    assert!(root.text().await.unwrap().contains("Ferrostack"));
    let token = login(&client, &stack).await;

    // A schedule firing every second, created through nginx.
    let schedule = post_json(
        &client,
        stack.nginx("/api/v1/schedules"),
        &token,
        json!({"name": "every second", "cron": "* * * * * *", "timezone": "UTC",
               "kind": "noop", "params": {}}),
    )
    .await;
    let schedule_id = schedule["id"]
        .as_str()
        .expect("schedule created")
        .to_owned();

    // A job whose events stream through nginx as they happen.
    let job = post_json(
        &client,
        stack.nginx("/api/v1/jobs"),
        &token,
        json!({"kind": "noop", "params": {"sleep_ms": 1500}}),
    )
    .await;
    let job_id = job["id"].as_str().expect("job accepted");
    let res = client
        .get(stack.nginx(&format!("/api/v1/jobs/events/{job_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let started = Instant::now();
    let mut chunks: Vec<(Duration, String)> = Vec::new();
    let mut stream = res.bytes_stream();
    let read_all = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = stream.next().await {
            let text = String::from_utf8_lossy(&chunk.unwrap()).into_owned();
            chunks.push((started.elapsed(), text));
        }
    })
    .await;
    assert!(read_all.is_ok(), "the event stream ended: {chunks:?}");
    let all: String = chunks.iter().map(|(_, t)| t.as_str()).collect();
    assert!(all.contains("\"status\":\"succeeded\""), "{all}");
    assert!(all.contains("event: progress"), "{all}");
    let first = chunks.first().unwrap().0;
    let last = chunks.last().unwrap().0;
    assert!(
        last - first >= Duration::from_millis(800),
        "events arrive as they happen, not buffered to the end: {chunks:?}"
    );

    // The schedule fires once per second through the outbox: distinct slots.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let url = stack.nginx(&format!("/api/v1/jobs?schedule_id={schedule_id}&size=100"));
        let fired = get_json(&client, url, &token).await;
        let slots: BTreeSet<String> = fired["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["scheduled_for"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            slots.len() as i64,
            fired["total"].as_i64().unwrap(),
            "no slot doubled"
        );
        let succeeded = fired["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["status"] == "succeeded")
            .count();
        if slots.len() >= 3 && succeeded >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the schedule did not fire: {fired}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The monitor sees one worker and one leading scheduler.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let monitor = get_json(&client, stack.nginx("/api/v1/monitor"), &token).await;
        let cluster = &monitor["cluster"];
        let workers = cluster["workers"].as_array().map_or(0, Vec::len);
        let leader = cluster["schedulers"]
            .as_array()
            .is_some_and(|s| s.len() == 1 && s[0]["role"] == "leader");
        if workers == 1 && leader && cluster["queue"].is_object() {
            break;
        }
        assert!(Instant::now() < deadline, "monitor: {monitor}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Every metric the alerts and the dashboard use is exported.
    let mut exposed = BTreeSet::new();
    for port in [
        stack.ports.api,
        stack.ports.worker_metrics,
        stack.ports.scheduler_metrics,
    ] {
        exposed.extend(metrics_exposed(&scrape(&client, port).await));
    }
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/dashboards/ferrostack.json")).unwrap();
    let used: BTreeSet<String> = rule_expressions(&read("deploy/prometheus/alerts.yml"))
        .into_iter()
        .chain(dashboard_expressions(&dashboard))
        .flat_map(|e| metrics_in_promql(&e))
        .collect();
    assert!(used.len() >= 8, "{used:?}");
    let missing: Vec<_> = used.difference(&exposed).collect();
    assert!(
        missing.is_empty(),
        "used by alerts or dashboard but not exported: {missing:?}\nexported: {exposed:?}"
    );
    let public = client.get(stack.nginx("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404, "metrics are not public");

    // Logs are prefixed by service; nginx logs JSON.
    for service in ["migrate", "api", "worker", "scheduler", "nginx"] {
        let tag = format!("[{service}]");
        assert!(
            stack.has_line(|l| l.starts_with(&tag)),
            "lines of {service}:\n{}",
            stack.output()
        );
    }
    assert!(stack.has_line(|l| l.starts_with("[nginx]") && l.contains("\"request_id\"")));

    // Ctrl-C: everything stops, and up.sh exits 0.
    stack.signal_group("-INT");
    let status = tokio::task::block_in_place(|| stack.wait_exit(Duration::from_secs(60)));
    assert!(status.success(), "up.sh exit: {status}\n{}", stack.output());
    let deadline = Instant::now() + Duration::from_secs(5);
    while stack.group_alive() {
        assert!(Instant::now() < deadline, "processes left after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    }
    for port in [
        stack.ports.api,
        stack.ports.nginx,
        stack.ports.worker_metrics,
        stack.ports.scheduler_metrics,
    ] {
        assert!(!port_open(port), "port {port} still open after Ctrl-C");
    }
    assert!(stack.has_line(|l| l == "[up] stopped"));
}

fn fresh_ports() -> Ports {
    Ports {
        api: free_port(),
        nginx: free_port(),
        worker_metrics: free_port(),
        scheduler_metrics: free_port(),
    }
}

/// Waits until no process of up.sh's group is left.
fn assert_all_gone(stack: &Stack) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while stack.group_alive() {
        assert!(
            Instant::now() < deadline,
            "processes left: {}",
            stack.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn up_sh_exits_non_zero_and_stops_the_rest_when_a_service_cannot_start() {
    let db = TestDb::new().await;
    // The worker refuses its configuration and exits at start, after the api
    // is already up: up.sh must say so, stop the api, and exit non-zero.
    let mut stack = Stack::start_with(&db, fresh_ports(), &[("WORKER_CONCURRENCY", "0")]);
    let status = tokio::task::block_in_place(|| stack.wait_exit(Duration::from_secs(240)));
    assert!(!status.success(), "{}", stack.output());
    assert!(
        stack.has_line(|l| l.contains("worker exited during start-up")),
        "{}",
        stack.output()
    );
    assert!(
        stack.has_line(|l| l == "[up] api is ready"),
        "{}",
        stack.output()
    );
    assert!(!stack.has_line(|l| l.starts_with("[up] Ferrostack is up")));
    assert_all_gone(&stack);
    assert!(!port_open(stack.ports.api), "the api was stopped too");
}

#[tokio::test(flavor = "multi_thread")]
async fn up_sh_refuses_to_start_on_a_port_in_use() {
    let db = TestDb::new().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ports = Ports {
        nginx: taken.local_addr().unwrap().port(),
        ..fresh_ports()
    };
    let mut stack = Stack::start(&db, ports);
    let status = tokio::task::block_in_place(|| stack.wait_exit(Duration::from_secs(240)));
    assert!(!status.success(), "{}", stack.output());
    let expected = format!("port {} (nginx) is already in use", stack.ports.nginx);
    assert!(
        stack.has_line(|l| l.contains(&expected)),
        "{}",
        stack.output()
    );
    assert!(
        !stack.has_line(|l| l.starts_with("[api]")),
        "nothing was started"
    );
    assert_all_gone(&stack);
    drop(taken);
}
