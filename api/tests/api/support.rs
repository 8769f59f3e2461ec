//! A running api on a random port, over its own database (ferro_testkit)
//! and its own Redis key prefix, talking to the real services.
#![allow(dead_code)]

use ferro_testkit::{ADMIN_PASSWORD, ADMIN_USERNAME, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::net::SocketAddr;
use uuid::Uuid;

pub struct TestApp {
    pub addr: SocketAddr,
    pub db: TestDb,
    pub prefix: String,
    pub client: reqwest::Client,
    pub state: api::AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The problem+json `code`, for error replies.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    pub fn field_errors(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Spawns with extra environment settings.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        // TEST_LOG=1 shows the api's logs (errors carry their whole cause chain).
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_test_writer()
                .with_env_filter("info")
                .try_init();
        }
        let db = TestDb::new().await;
        let prefix = format!("test:{}:", Uuid::new_v4().simple());
        let mut env = db
            .env()
            .with("REDIS_KEY_PREFIX", prefix.clone())
            .with("BROKER_PREFIX", broker_prefix(&prefix))
            .with("JWT_SECRET", "test-secret-test-secret-test-secret!")
            .with("LOGIN_MAX_FAILURES_PER_USER", "3")
            .with("LOG_FORMAT", "pretty")
            .with(
                "UPLOADS_DIR",
                std::env::temp_dir()
                    .join(format!(
                        "ferro-uploads-{}",
                        prefix.trim_end_matches(':').replace(':', "-")
                    ))
                    .display()
                    .to_string(),
            );
        for (k, v) in extra {
            env = env.with(k, *v);
        }
        let config = api::ApiConfig::from_env(&env).expect("valid test configuration");
        let state = api::build_state(config).await.expect("api state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(api::serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            db,
            prefix,
            client: reqwest::Client::new(),
            state,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::PUT, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    pub async fn login_as(&self, username: &str, password: &str, tenant: Option<&str>) -> Reply {
        let mut body = json!({"username": username, "password": password});
        if let Some(t) = tenant {
            body["tenant"] = json!(t);
        }
        self.request(Method::POST, "/api/v1/auth/login", None, Some(body))
            .await
    }

    /// Logs in and returns the access token; panics on failure.
    pub async fn token(&self, username: &str, password: &str) -> String {
        let reply = self.login_as(username, password, None).await;
        assert_eq!(reply.status, StatusCode::OK, "login failed: {}", reply.body);
        reply.body["access_token"].as_str().unwrap().to_owned()
    }

    /// The seeded platform administrator's token (tenant `default`).
    pub async fn admin_token(&self) -> String {
        self.token(ADMIN_USERNAME, ADMIN_PASSWORD).await
    }

    /// Creates a user in the admin token's tenant with the given roles.
    pub async fn create_user(&self, admin: &str, username: &str, roles: &[&str]) -> (Uuid, String) {
        let reply = self
            .post(
                "/api/v1/users",
                admin,
                json!({"username": username, "password": "password-123", "roles": roles}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let id = reply.body["id"].as_str().unwrap().parse().unwrap();
        (id, self.token(username, "password-123").await)
    }

    /// Creates a tenant (as the platform administrator) with an admin user of
    /// its own; returns the tenant id and that admin's token.
    pub async fn tenant_with_admin(&self, slug: &str) -> (Uuid, String) {
        let admin = self.admin_token().await;
        let reply = self
            .post(
                "/api/v1/tenants",
                &admin,
                json!({"slug": slug, "name": slug}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let tenant: Uuid = reply.body["id"].as_str().unwrap().parse().unwrap();
        let switched = self
            .post(
                "/api/v1/auth/switch-tenant",
                &admin,
                json!({"tenant_id": tenant}),
            )
            .await;
        assert_eq!(switched.status, StatusCode::OK, "{}", switched.body);
        let in_tenant = switched.body["access_token"].as_str().unwrap().to_owned();
        let user = format!("{slug}-admin");
        let (_, token) = self.create_user(&in_tenant, &user, &["admin"]).await;
        (tenant, token)
    }

    pub async fn create_device(&self, token: &str, name: &str) -> Value {
        let reply = self
            .post(
                "/api/v1/devices",
                token,
                json!({"name": name, "protocol": "snmp", "host": "127.0.0.1", "tags": ["lab"],
                       "snmp": {"version": "v2c", "community": "s3cret-community"}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    /// The OpenAPI document the api serves.
    pub async fn openapi(&self) -> Value {
        self.client
            .get(self.url("/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The Prometheus exposition from `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = std::fs::remove_dir_all(&self.state.config.uploads.dir);
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

/// `BROKER_URL` for the tests that run on Redis Streams.
pub const REDIS_BROKER: &str = "redis://127.0.0.1:6379/0";

/// The broker name prefix of a test: its own queues on the shared RabbitMQ
/// (or its own streams on the shared Redis).
pub fn broker_prefix(prefix: &str) -> String {
    prefix.trim_end_matches(':').replace(':', "-")
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Remove this test's queues and exchanges (or streams).
        let broker = self.state.config.broker.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(handle) = ferro_broker::Broker::from_config(&broker) {
                    let _ = handle.delete_topology().await;
                }
            });
        })
        .join();
        // Remove this test's Redis keys.
        let prefix = self.prefix.clone();
        let _ = std::thread::spawn(move || {
            let Ok(mut conn) =
                redis::Client::open("redis://127.0.0.1:6379/0").and_then(|c| c.get_connection())
            else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        })
        .join();
    }
}

/// A worker running in-process on the api's broker handle (the same
/// `BROKER_URL` and prefix), publishing events under the app's Redis prefix
/// and writing its heartbeat as `worker_id`. Cancel the token to stop it.
pub fn start_worker(
    app: &TestApp,
    db: ferro_db::Db,
    worker_id: &str,
    concurrency: usize,
) -> tokio_util::sync::CancellationToken {
    start_worker_on(app, db, worker_id, concurrency, &[])
}

/// [`start_worker`] consuming the given queues (each with its cap) only;
/// none: the default queue.
pub fn start_worker_on(
    app: &TestApp,
    db: ferro_db::Db,
    worker_id: &str,
    concurrency: usize,
    queues: &[(&str, usize)],
) -> tokio_util::sync::CancellationToken {
    let stop = tokio_util::sync::CancellationToken::new();
    let events = worker::Events::new(
        ferro_redis::create_pool(
            "redis://127.0.0.1:6379/0",
            2,
            std::time::Duration::from_secs(2),
        )
        .unwrap(),
        app.prefix.clone(),
    );
    let settings = worker::RunConfig {
        concurrency,
        lease: std::time::Duration::from_secs(10),
        grace: std::time::Duration::from_secs(5),
        worker_id: worker_id.into(),
        smtp: None,
        retention: Default::default(),
        queues: queues.iter().map(|(q, n)| (q.to_string(), *n)).collect(),
        limits: app.state.config.queues.limits().clone(),
        uploads: app.state.config.uploads.clone(),
    };
    let (broker, token) = (app.state.broker.clone(), stop.clone());
    tokio::spawn(async move { worker::run(db, broker, Some(events), settings, token).await });
    stop
}
