//! The real nginx (Debian's package) with `proxy-config/` rendered by
//! `proxy-config/render.sh`, in front of the real api on random ports.

use crate::support::TestApp;
use ferro_testkit::free_port;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn proxy_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../proxy-config")
}

/// Renders the configuration into a fresh directory; `extra` adds settings.
fn render(api_port: u16, nginx_port: u16, extra: &[(&str, String)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferro-nginx-{}", uuid::Uuid::new_v4().simple()));
    let status = Command::new(proxy_config().join("render.sh"))
        .arg(&dir)
        .env("API_UPSTREAM", format!("127.0.0.1:{api_port}"))
        .env("NGINX_PORT", nginx_port.to_string())
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .status()
        .unwrap();
    assert!(status.success(), "render.sh failed");
    dir
}

fn nginx_test(dir: &std::path::Path) -> std::process::Output {
    Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .output()
        .expect("nginx is installed (deploy/local/install-test-deps.sh installs it)")
}

pub struct Nginx {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    pub fn start(app: &TestApp) -> Self {
        Self::start_with(app, &[])
    }

    fn start_with(app: &TestApp, extra: &[(&str, String)]) -> Self {
        let port = free_port();
        let dir = render(app.addr.port(), port, extra);
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, dir, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        if std::thread::panicking()
            && let Some(mut err) = self.child.stderr.take()
        {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            eprintln!("nginx stderr:\n{text}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The headers nginx puts on every answer, errors and streams included.
fn assert_security_headers(h: &reqwest::header::HeaderMap, what: &str) {
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(
        h["referrer-policy"], "strict-origin-when-cross-origin",
        "{what}"
    );
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'"),
        "{what}"
    );
    assert_eq!(h.get_all("x-request-id").iter().count(), 1, "{what}");
    assert!(
        h.get("strict-transport-security").is_none(),
        "{what}: HSTS only on TLS"
    );
}

#[test]
fn the_rendered_configuration_passes_nginx_t_with_and_without_tls() {
    let dir = render(18001, free_port(), &[]);
    let out = nginx_test(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let upstream = std::fs::read_to_string(dir.join("conf.d/ferrostack-upstream.conf")).unwrap();
    assert!(upstream.contains("server 127.0.0.1:18001;"), "{upstream}");
    let locations = std::fs::read_to_string(dir.join("conf.d/ferrostack-locations.inc")).unwrap();
    assert!(locations.contains("proxy_pass http://ferrostack_api;"));
    let conf = std::fs::read_to_string(dir.join("conf.d/ferrostack.conf")).unwrap();
    assert!(
        conf.contains("$binary_remote_addr"),
        "nginx's own variables stay"
    );

    let certs = dir.join("certs");
    let made = Command::new(proxy_config().join("make-dev-cert.sh"))
        .arg(&certs)
        .output()
        .unwrap();
    assert!(made.status.success());
    let tls = render(
        18001,
        free_port(),
        &[
            ("TLS_CERT", certs.join("tls.crt").display().to_string()),
            ("TLS_KEY", certs.join("tls.key").display().to_string()),
            ("TLS_PORT", free_port().to_string()),
        ],
    );
    let out = nginx_test(&tls);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tls.join("conf.d/ferrostack.tls.conf").exists());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&tls);
}

/// `curl -sk -D -` of a URL: the status line and headers.
async fn curl_headers(url: &str) -> String {
    // Async: the api under test runs on this test's runtime.
    let out = tokio::process::Command::new("curl")
        .args(["-sk", "--max-time", "10", "-o", "/dev/null", "-D", "-", url])
        .output()
        .await
        .expect("curl is installed (deploy/local/install-test-deps.sh installs it)");
    assert!(out.status.success(), "curl {url}");
    String::from_utf8_lossy(&out.stdout).to_lowercase()
}

#[tokio::test]
async fn the_tls_server_answers_with_hsts_and_the_plain_one_without() {
    let app = TestApp::spawn().await;
    let certs = std::env::temp_dir().join(format!("ferro-certs-{}", uuid::Uuid::new_v4().simple()));
    let made = Command::new(proxy_config().join("make-dev-cert.sh"))
        .arg(&certs)
        .output()
        .unwrap();
    assert!(made.status.success());
    let tls_port = free_port();
    let nginx = Nginx::start_with(
        &app,
        &[
            ("TLS_CERT", certs.join("tls.crt").display().to_string()),
            ("TLS_KEY", certs.join("tls.key").display().to_string()),
            ("TLS_PORT", tls_port.to_string()),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_err() {
        assert!(Instant::now() < deadline, "the TLS server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let secure = curl_headers(&format!("https://127.0.0.1:{tls_port}/api/v1/health")).await;
    assert!(
        secure.starts_with("http/2 200") || secure.starts_with("http/1.1 200"),
        "{secure}"
    );
    assert!(
        secure.contains("strict-transport-security: max-age=31536000"),
        "{secure}"
    );
    assert!(secure.contains("x-frame-options: deny"), "{secure}");
    let problem = curl_headers(&format!("https://127.0.0.1:{tls_port}/no-such-page")).await;
    assert!(
        problem.contains("strict-transport-security"),
        "errors too: {problem}"
    );
    let plain = curl_headers(&nginx.url("/api/v1/health")).await;
    assert!(!plain.contains("strict-transport-security"), "{plain}");
    let _ = std::fs::remove_dir_all(&certs);
}

#[tokio::test]
async fn nginx_routes_sets_headers_compresses_and_hides_metrics() {
    let app = TestApp::spawn().await;
    let nginx = Nginx::start(&app);
    let client = reqwest::Client::new();

    let res = client
        .get(nginx.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers();
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    assert!(
        h.get("strict-transport-security").is_none(),
        "HSTS only on TLS"
    );
    let generated = h["x-request-id"].to_str().unwrap();
    assert_eq!(generated.len(), 32, "nginx made one: {generated}");
    assert_eq!(h.get_all("x-request-id").iter().count(), 1);

    let res = client
        .get(nginx.url("/api/v1/health"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc-123");
    // One the api would not accept either is replaced, so both log the same id.
    let res = client
        .get(nginx.url("/api/v1/health"))
        .header("x-request-id", "has spaces; and more")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"].len(), 32);

    for (path, status) in [
        ("/", StatusCode::OK),
        ("/docs/", StatusCode::OK),
        ("/redoc", StatusCode::OK),
        ("/openapi.json", StatusCode::OK),
        ("/metrics", StatusCode::NOT_FOUND),
    ] {
        let res = client.get(nginx.url(path)).send().await.unwrap();
        assert_eq!(res.status(), status, "{path}");
    }
    let root = client.get(nginx.url("/")).send().await.unwrap();
    assert_eq!(root.headers()["server"], "nginx", "no version");
    assert!(root.text().await.unwrap().contains("Ferrostack"));

    // nginx's own errors are problems, with the security headers.
    let long = format!("/api/v1/devices?q={}", "x".repeat(9000));
    let huge_header = "y".repeat(9000);
    for (method, path, header, status) in [
        ("GET", "/metrics", None, StatusCode::NOT_FOUND),
        (
            "TRACE",
            "/api/v1/health",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        ("GET", long.as_str(), None, StatusCode::URI_TOO_LONG),
        (
            "GET",
            "/api/v1/health",
            Some(huge_header.as_str()),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ),
    ] {
        let mut request = client.request(method.parse().unwrap(), nginx.url(path));
        if let Some(value) = header {
            request = request.header("x-large", value);
        }
        let res = request.send().await.unwrap();
        assert_eq!(
            res.status(),
            status,
            "{method} {}",
            &path[..path.len().min(40)]
        );
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        assert_security_headers(res.headers(), status.as_str());
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(res.headers().contains_key("allow"));
        }
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], status.as_u16());
    }

    // Even for a request nginx cannot parse (no client sends this one).
    let raw = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", nginx.port))
            .await
            .unwrap();
        tcp.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(raw.contains("application/problem+json") && raw.contains("\"code\":\"bad_request\""));

    // JSON is gzipped by nginx for clients that accept it.
    let res = client
        .get(nginx.url("/openapi.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    // So are the docs' scripts (text/javascript), the largest answers there are.
    let res = client
        .get(nginx.url("/docs/swagger-ui-bundle.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-encoding"], "gzip");

    // Too large a body: a problem+json 413 from nginx, before the api.
    let res = client
        .post(nginx.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_security_headers(res.headers(), "413");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large");
}

#[tokio::test]
async fn logins_are_rate_limited_per_address_with_a_problem() {
    let app = TestApp::spawn().await;
    let nginx = Nginx::start(&app);
    let client = reqwest::Client::new();
    let mut limited = None;
    for i in 0..20 {
        let res = client
            .post(nginx.url("/api/v1/auth/login"))
            .json(&json!({"username": format!("nobody-{i}"), "password": "wrong-password"}))
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(res);
            break;
        }
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = limited.expect("nginx limits logins per address");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_security_headers(res.headers(), "429");
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("this address"));
}

#[tokio::test]
async fn job_events_stream_through_nginx_unbuffered_and_the_websocket_upgrades() {
    // No broker: the job stays queued, so its event stream stays open and only
    // an unbuffered proxy delivers its first event before the stream ends.
    let app = TestApp::spawn_with(&[("BROKER_URL", "amqp://guest:guest@127.0.0.1:1/%2f")]).await;
    let nginx = Nginx::start(&app);
    let token = app.admin_token().await;
    let client = reqwest::Client::new();
    let job: Value = client
        .post(nginx.url("/api/v1/jobs"))
        .bearer_auth(&token)
        .json(&json!({"kind": "noop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap();
    let res = client
        .get(nginx.url(&format!("/api/v1/jobs/events/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_security_headers(res.headers(), "SSE");
    let mut stream = res.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(3), stream.next())
        .await
        .expect("the first event arrives while the stream is open")
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&first);
    assert!(text.contains("\"status\":\"queued\""), "{text}");

    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://127.0.0.1:{}/api/v1/jobs/ws",
            nginx.port
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (_ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the WebSocket upgrade passes nginx");
    assert_eq!(response.status().as_u16(), 101);
}

#[tokio::test]
async fn the_api_sees_the_request_id_and_the_client_address_nginx_passes_on() {
    let app = TestApp::spawn().await;
    let nginx = Nginx::start(&app);
    let token = app.admin_token().await;
    let client = reqwest::Client::new();
    // The client is on loopback, which the api trusts as a proxy too, so the
    // address it claims in X-Forwarded-For is believed: nginx appends
    // 127.0.0.1 and the api takes the right-most untrusted one.
    let res = client
        .post(nginx.url("/api/v1/devices"))
        .bearer_auth(&token)
        .header("x-request-id", "trace-device-42")
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({"name": "edge-1", "protocol": "http", "host": "10.0.0.9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let audit = app.get("/api/v1/audit-logs?size=100", &token).await;
    let row = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "/api/v1/devices" && r["method"] == "POST")
        .cloned()
        .unwrap_or_else(|| panic!("an audit row: {}", audit.body));
    assert_eq!(row["request_id"], "trace-device-42");
    assert_eq!(row["ip"], "203.0.113.7");
}

/// Headless Chromium (Debian package `chromium`, installed by `deploy/local/install-test-deps.sh`)
/// loads `url`, runs its scripts, and gives the resulting DOM and the
/// console lines it logged.
async fn render_in_browser(url: &str) -> (String, String) {
    let profile =
        std::env::temp_dir().join(format!("ferro-chromium-{}", uuid::Uuid::new_v4().simple()));
    let out = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=8000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output()
        .await
        .expect("chromium is installed (deploy/local/install-test-deps.sh installs it)");
    let _ = std::fs::remove_dir_all(&profile);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_docs_and_monitor_pages_work_in_a_browser_under_the_content_security_policy() {
    let app = TestApp::spawn().await;
    let nginx = Nginx::start(&app);
    let violations = |console: &str| -> Vec<String> {
        console
            .lines()
            .filter(|l| l.contains("Content Security Policy"))
            // Redoc's sidebar asks its CDN for a logo; blocking it is the point.
            .filter(|l| !l.contains("https://cdn.redoc.ly/"))
            .map(str::to_owned)
            .collect()
    };

    let (dom, console) = render_in_browser(&nginx.url("/docs/")).await;
    assert!(
        dom.contains("opblock-summary-path") && dom.contains("/api/v1/devices"),
        "Swagger UI rendered the operations; console:\n{console}"
    );
    assert_eq!(violations(&console), Vec::<String>::new());

    let (dom, console) = render_in_browser(&nginx.url("/redoc")).await;
    assert!(
        dom.contains("redoc-wrap") && dom.contains("/api/v1/devices"),
        "Redoc rendered the document; console:\n{console}"
    );
    assert_eq!(violations(&console), Vec::<String>::new());

    let (dom, console) = render_in_browser(&nginx.url("/monitor")).await;
    assert!(
        dom.contains("Sign in"),
        "the monitor page ran; console:\n{console}"
    );
    assert_eq!(violations(&console), Vec::<String>::new());
}
