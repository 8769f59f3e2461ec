//! The compose topology for real: the project's own Dockerfile and
//! `docker-compose.yml`, run with Docker as a user runs them (here with the
//! stand-in images of deploy/standins, since no registry is reachable).
//! One stack goes through every scenario in turn, each failing the test
//! when it does not hold:
//!
//! 1. `up --build`: every service healthy, migrate exited 0;
//! 2. the README's walk-through through nginx: login, a device, a job and
//!    its events to the end (SSE), its results, a schedule, the monitor,
//!    /docs, /redoc, the WebSocket; HTTPS with a mounted certificate;
//! 3. `--scale worker=3`: three workers in the monitor;
//! 4. `--scale api=2`: both replicas answer through nginx and accept each
//!    other's tokens;
//! 5. a worker killed mid-job: the job still succeeds, once;
//! 6. the postgres container restarted: every service recovers on its own;
//! 7. `down` then `up` with workers stopped and jobs waiting: data and the
//!    waiting jobs are kept (in RabbitMQ's queue: the node keeps its name);
//!    a refused password names the volume that keeps the old one;
//! 8. the Redis Streams variant, without RabbitMQ running;
//! 9. `down -v` leaves nothing.
//!
//! The images are built with FERROSTACK_CARGO_PROFILE=fast-release (no LTO)
//! to keep the test's cold build short; Docker's build cache lives in the
//! engine, outside the clone.

use std::time::{Duration, Instant};

use ferro_deploy::compose::{self, Compose, docker};
use ferro_testkit::free_port;
use futures_util::StreamExt;
use serde_json::{Value, json};

const PROJECT: &str = "ferrostack-test";

/// Removes the project (containers and volumes) however the test ends.
struct Down(&'static str);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = Compose::new(self.0, &[]).run(&["down", "-v", "--remove-orphans", "-t", "5"]);
    }
}

/// The stack through nginx.
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(port: u16) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn login(&self) -> String {
        let res = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"username": "admin", "password": "admin"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "login through nginx");
        res.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn submit(&self, token: &str, params: Value) -> String {
        let (status, job) = self
            .post(
                "/api/v1/jobs",
                token,
                json!({"kind": "noop", "params": params}),
            )
            .await;
        assert_eq!(status, 202, "{job}");
        job["id"].as_str().unwrap().to_owned()
    }

    /// Waits until the job has ended; its final state.
    async fn finished(&self, token: &str, id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let (status, job) = self.get(&format!("/api/v1/jobs/{id}"), token).await;
            if status == 200
                && ["succeeded", "failed", "cancelled"].contains(&job["status"].as_str().unwrap())
            {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} did not end: {job}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A fresh login, retried while the stack recovers (503s, refused
    /// connections).
    async fn login_when_up(&self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let res = self
                .http
                .post(format!("{}/api/v1/auth/login", self.base))
                .json(&json!({"username": "admin", "password": "admin"}))
                .send()
                .await;
            if let Ok(res) = res
                && res.status() == 200
            {
                return res.json::<Value>().await.unwrap()["access_token"]
                    .as_str()
                    .unwrap()
                    .to_owned();
            }
            assert!(Instant::now() < deadline, "no login within {limit:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_runs_scales_recovers_and_keeps_its_data() {
    assert!(
        compose::engine_available(),
        "no Docker engine answers {}: run deploy/local/install-test-deps.sh (it installs \
         Debian's docker.io and starts dockerd)",
        compose::DOCKER
    );
    let standins = std::process::Command::new(compose::standins_script())
        .output()
        .unwrap();
    assert!(
        standins.status.success(),
        "deploy/standins/build.sh: {}",
        String::from_utf8_lossy(&standins.stderr)
    );
    let (http_port, tls_port, mq_port) = (free_port(), free_port(), free_port());
    // A development certificate of the test's own: nginx serves HTTPS too.
    let certs = std::env::temp_dir().join(format!("ferro-compose-certs-{}", std::process::id()));
    let made =
        std::process::Command::new(ferro_deploy::repo_root().join("proxy-config/make-dev-cert.sh"))
            .arg(&certs)
            .output()
            .unwrap();
    assert!(made.status.success(), "make-dev-cert.sh: {made:?}");
    let mut stack = Compose::new(
        PROJECT,
        &[
            ("NGINX_PORT", http_port.to_string()),
            ("NGINX_TLS_PORT", tls_port.to_string()),
            ("RABBITMQ_MANAGEMENT_PORT", mq_port.to_string()),
            ("FERROSTACK_CARGO_PROFILE", "fast-release".into()),
            ("WORKER_LEASE_SECONDS", "5".into()),
            ("NGINX_CERTS_DIR", certs.display().to_string()),
        ],
    );
    let _ = stack.run(&["down", "-v", "--remove-orphans", "-t", "5"]);
    let down = Down(PROJECT);
    let client = Client::new(http_port);
    let started = Instant::now();

    // 1. Up, healthy, migrated.
    stack.ok(&["up", "-d", "--build"]);
    let everything = [
        ("nginx", 1),
        ("api", 1),
        ("worker", 1),
        ("scheduler", 1),
        ("postgres", 1),
        ("redis", 1),
        ("rabbitmq", 1),
    ];
    stack.wait_healthy(&everything, Duration::from_secs(180));
    assert_eq!(stack.exit_code("migrate"), Some(0), "migrate exited 0");
    println!("up and healthy after {:?}", started.elapsed());

    // 2. The README's walk-through, through nginx.
    println!("compose: walk-through ({:?})", started.elapsed());
    let token = client.login().await;
    let (status, me) = client.get("/api/v1/auth/me", &token).await;
    assert_eq!(
        (status, me["user"]["username"].as_str()),
        (200, Some("admin"))
    );
    let device = json!({"name": "core-1", "protocol": "snmp", "host": "10.0.0.1",
                        "snmp": {"version": "v2c", "community": "public"}});
    let (status, device) = client.post("/api/v1/devices", &token, device).await;
    assert_eq!(status, 201, "{device}");
    let (status, devices) = client.get("/api/v1/devices?page=1&size=20", &token).await;
    assert_eq!((status, devices["total"].as_i64()), (200, Some(1)));
    let job = client.submit(&token, json!({"sleep_ms": 1500})).await;
    let events = client
        .http
        .get(format!("{}/api/v1/jobs/events/{job}", client.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let mut body = String::new();
    let mut stream = events.bytes_stream();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("events keep coming until the job ends")
    {
        body.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    // From the job's state when the stream began, through its progress, to
    // its end, after which the stream closes.
    assert!(body.contains("event: progress"), "{body}");
    assert!(body.contains("\"status\":\"succeeded\""), "{body}");
    let (status, results) = client
        .get(&format!("/api/v1/jobs/{job}/results"), &token)
        .await;
    assert_eq!(
        (status, results["total"].as_i64()),
        (200, Some(1)),
        "{results}"
    );
    let schedule = json!({"name": "nightly export", "cron": "0 2 * * *",
                          "timezone": "Europe/Paris", "kind": "devices.export", "params": {}});
    let (status, schedule) = client.post("/api/v1/schedules", &token, schedule).await;
    assert_eq!(status, 201, "{schedule}");
    let (status, monitor) = client.get("/api/v1/monitor", &token).await;
    assert_eq!(status, 200, "{monitor}");
    for page in ["/docs/", "/redoc", "/openapi.json", "/monitor", "/"] {
        let res = client
            .http
            .get(format!("{}{page}", client.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{page}");
    }
    let https = std::process::Command::new("curl")
        .args(["-sk", "--max-time", "10"])
        .arg(format!("https://127.0.0.1:{tls_port}/api/v1/health"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&https.stdout),
        r#"{"status":"ok"}"#,
        "HTTPS with the mounted certificate"
    );
    let mut ws = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://127.0.0.1:{http_port}/api/v1/jobs/ws"),
    )
    .unwrap();
    ws.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(ws)
        .await
        .expect("the WebSocket upgrade passes nginx");
    assert_eq!(response.status().as_u16(), 101);
    let watched = client.submit(&token, json!({})).await;
    let message = tokio::time::timeout(Duration::from_secs(15), socket.next())
        .await
        .expect("a job event over the WebSocket")
        .unwrap()
        .unwrap();
    assert!(message.to_string().contains(&watched), "{message}");
    drop(socket);

    // 3. Three workers.
    println!("compose: three workers ({:?})", started.elapsed());
    stack.ok(&["up", "-d", "--no-recreate", "--scale", "worker=3"]);
    stack.wait_healthy(&[("worker", 3)], Duration::from_secs(90));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, monitor) = client.get("/api/v1/monitor", &token).await;
        let workers = monitor["cluster"]["workers"].as_array().map_or(0, Vec::len);
        if workers == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the monitor shows {workers} workers: {monitor}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // 4. Two api replicas behind nginx, each accepting the other's tokens.
    println!("compose: two api replicas ({:?})", started.elapsed());
    stack.ok(&[
        "up",
        "-d",
        "--no-recreate",
        "--scale",
        "worker=3",
        "--scale",
        "api=2",
    ]);
    stack.wait_healthy(&[("api", 2)], Duration::from_secs(90));
    let replicas = stack.containers("api", false);
    let direct = |id: &str| format!("http://{}:8001", compose::address(id));
    let from_first = login_at(&client.http, &direct(&replicas[0])).await;
    let me_at_second = client
        .http
        .get(format!("{}/api/v1/auth/me", direct(&replicas[1])))
        .bearer_auth(&from_first)
        .send()
        .await
        .unwrap();
    assert_eq!(
        me_at_second.status(),
        200,
        "a replica accepts the other's token"
    );
    let before: Vec<u64> =
        futures_util::future::join_all(replicas.iter().map(|id| served(&client.http, direct(id))))
            .await;
    for _ in 0..40 {
        assert_eq!(client.get("/api/v1/auth/me", &from_first).await.0, 200);
    }
    let after: Vec<u64> =
        futures_util::future::join_all(replicas.iter().map(|id| served(&client.http, direct(id))))
            .await;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(
            a > b,
            "replica {i} served none of nginx's 40 requests ({b} -> {a})"
        );
    }
    stack.ok(&[
        "up",
        "-d",
        "--no-recreate",
        "--scale",
        "worker=3",
        "--scale",
        "api=1",
    ]);

    // 5. A worker killed mid-job: the job succeeds once.
    println!("compose: a worker killed mid-job ({:?})", started.elapsed());
    let long = client.submit(&token, json!({"sleep_ms": 4000})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let holder = loop {
        let running = stack.containers("worker", false).into_iter().find(|id| {
            let host = compose::inspect(id, "{{.Config.Hostname}}");
            holds_job(&stack, &host, &long)
        });
        if let Some(id) = running {
            break id;
        }
        assert!(Instant::now() < deadline, "no worker took job {long}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // SIGKILL to its process from outside, as the kernel's OOM killer or a
    // crash would end it (`docker kill` counts as a manual stop, which the
    // restart policy leaves stopped).
    let pid = compose::inspect(&holder, "{{.State.Pid}}");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    assert!(killed.success(), "kill -KILL {pid}");
    let job = client
        .finished(&token, &long, Duration::from_secs(90))
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let (_, results) = client
        .get(&format!("/api/v1/jobs/{long}/results"), &token)
        .await;
    assert_eq!(
        results["total"], 1,
        "its results were written once: {results}"
    );

    // 6. PostgreSQL restarted: every service recovers on its own.
    println!("compose: postgres restarted ({:?})", started.elapsed());
    let postgres = stack.containers("postgres", false).remove(0);
    docker(&["restart", "-t", "5", &postgres]);
    stack.wait_healthy(
        &everything.map(|(s, n)| (s, if s == "worker" { 3 } else { n })),
        Duration::from_secs(120),
    );
    let token = client.login_when_up(Duration::from_secs(60)).await;
    let after_restart = client.submit(&token, json!({})).await;
    let job = client
        .finished(&token, &after_restart, Duration::from_secs(60))
        .await;
    assert_eq!(
        job["status"], "succeeded",
        "jobs run after the restart: {job}"
    );

    // 7. down and up: data and waiting jobs are kept.
    println!("compose: down and up ({:?})", started.elapsed());
    stack.ok(&["stop", "worker"]);
    let mut waiting = Vec::new();
    for _ in 0..5 {
        waiting.push(client.submit(&token, json!({})).await);
    }
    stack.ok(&["down", "-t", "10"]);
    // A password that no longer matches the volume's stops migrate with a
    // message naming the volume.
    stack.set("POSTGRES_PASSWORD", "not-the-volume-password");
    let refused = stack.run(&["up", "-d", "migrate"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while stack.exit_code("migrate").is_none() {
        assert!(
            Instant::now() < deadline,
            "migrate never ended: {refused:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(stack.exit_code("migrate"), Some(1));
    let logs = String::from_utf8_lossy(&stack.run(&["logs", "migrate"]).stdout).into_owned();
    assert!(logs.contains("postgres-data volume"), "{logs}");
    stack.ok(&["down", "-t", "5"]);
    stack.set("POSTGRES_PASSWORD", "postgres");
    // Without workers first: the waiting jobs are still in RabbitMQ's queue.
    stack.ok(&["up", "-d", "--scale", "worker=0"]);
    stack.wait_healthy(&[("api", 1), ("rabbitmq", 1)], Duration::from_secs(180));
    let queued = queue_depth(&client.http, mq_port).await;
    assert_eq!(queued, 5, "the recreated node kept the 5 waiting messages");
    stack.ok(&["up", "-d", "--scale", "worker=1"]);
    let token = client.login_when_up(Duration::from_secs(60)).await;
    for id in &waiting {
        let job = client.finished(&token, id, Duration::from_secs(60)).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let (_, devices) = client.get("/api/v1/devices", &token).await;
    assert_eq!(devices["total"], 1, "the device outlived down and up");

    // 8. Redis Streams, without RabbitMQ.
    println!("compose: redis streams ({:?})", started.elapsed());
    stack.ok(&["down", "-t", "10"]);
    stack.set("COMPOSE_BROKER_URL", "redis://redis:6379/0");
    stack.ok(&["up", "-d", "--scale", "rabbitmq=0"]);
    assert!(
        stack.containers("rabbitmq", false).is_empty(),
        "RabbitMQ is not running"
    );
    stack.wait_healthy(
        &[("nginx", 1), ("api", 1), ("worker", 1), ("scheduler", 1)],
        Duration::from_secs(180),
    );
    let token = client.login_when_up(Duration::from_secs(60)).await;
    let on_redis = client.submit(&token, json!({"sleep_ms": 200})).await;
    let job = client
        .finished(&token, &on_redis, Duration::from_secs(60))
        .await;
    assert_eq!(job["status"], "succeeded", "a job on Redis Streams: {job}");

    // 9. down -v leaves nothing.
    println!("compose: down -v ({:?})", started.elapsed());
    drop(down);
    let left = stack.leftovers();
    assert!(left.is_empty(), "down -v left {left:?}");
    let _ = std::fs::remove_dir_all(&certs);
    println!("compose scenarios done in {:?}", started.elapsed());
}

/// Logs in at one api replica directly (not through nginx).
async fn login_at(http: &reqwest::Client, base: &str) -> String {
    let res = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "login at {base}");
    res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// How many `GET /api/v1/auth/me` a replica answered, from its own metrics.
async fn served(http: &reqwest::Client, base: String) -> u64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("http_requests_total{") && l.contains("route=\"/api/v1/auth/me\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Whether the worker on `host` holds `job` (its row names that worker).
fn holds_job(stack: &Compose, host: &str, job: &str) -> bool {
    let postgres = stack.containers("postgres", false).remove(0);
    let sql = format!("SELECT worker_id FROM jobs WHERE id = '{job}' AND status = 'running'");
    let out = std::process::Command::new(compose::DOCKER)
        .args([
            "exec",
            &postgres,
            "psql",
            "-U",
            "postgres",
            "-d",
            "ferrostack",
            "-tAc",
            &sql,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).starts_with(&format!("{host}:"))
}

/// Messages waiting in the stack's default job queue (`ferro.q.default`),
/// from RabbitMQ's management API.
async fn queue_depth(http: &reqwest::Client, port: u16) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let res = http
            .get(format!(
                "http://127.0.0.1:{port}/api/queues/%2f/ferro.q.default"
            ))
            .basic_auth("guest", Some("guest"))
            .send()
            .await;
        if let Ok(res) = res
            && res.status() == 200
            && let Ok(queue) = res.json::<Value>().await
            && let Some(n) = queue["messages"].as_u64()
        {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "RabbitMQ's management API did not answer"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
