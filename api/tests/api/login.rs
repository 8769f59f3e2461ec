//! Logging in: the token pair, refusals that look alike and take alike,
//! throttling per user name and per address, and the login log.

use crate::support::TestApp;
use ferro_testkit::{ADMIN_PASSWORD, ADMIN_USERNAME};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn login_returns_a_bearer_pair_and_me_describes_the_caller() {
    let app = TestApp::spawn().await;
    let reply = app
        .login_as("admin", ferro_testkit::ADMIN_PASSWORD, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 3600);
    assert_eq!(reply.body["tenant_id"], app.db.default_tenant().to_string());
    let token = reply.body["access_token"].as_str().unwrap();
    assert!(reply.body["refresh_token"].as_str().unwrap().len() > 64);
    assert_eq!(reply.headers["cache-control"], "no-store", "RFC 6749 5.1");

    let me = app.get("/api/v1/auth/me", token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["user"]["username"], "admin");
    assert_eq!(me.body["tenant"]["slug"], "default");
    assert_eq!(me.body["roles"], json!(["admin"]));
    assert!(
        me.body["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("tenants:manage"))
    );
}

#[tokio::test]
async fn wrong_user_and_wrong_password_get_the_same_401_and_are_logged() {
    let app = TestApp::spawn().await;
    let unknown = app.login_as("nobody", "whatever-password", None).await;
    let wrong = app.login_as("admin", "wrong-password", None).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.body, wrong.body);
    assert_eq!(unknown.code(), "unauthorized");
    assert_eq!(unknown.headers["content-type"], "application/problem+json");
    // PostgreSQL's lower() folds the Turkish dotted capital I to a plain i; a
    // name spelled with it is no user's name (user names are ASCII), so it
    // cannot log in as admin and draw on a throttle budget of its own.
    let dotted = app
        .login_as("adm\u{130}n", ferro_testkit::ADMIN_PASSWORD, None)
        .await;
    assert_eq!(dotted.status, StatusCode::UNAUTHORIZED);
    assert_eq!(dotted.body, unknown.body);

    let token = app.admin_token().await;
    let logs = app.get("/api/v1/login-logs", &token).await;
    assert_eq!(logs.status, StatusCode::OK);
    let outcomes: Vec<(String, String)> = logs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["outcome"].as_str().unwrap().to_owned(),
                l["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    // The unknown user's attempt has no tenant, so only the admin's show here.
    assert_eq!(
        outcomes,
        vec![
            ("success".into(), "".into()),
            ("failure".into(), "wrong password".into())
        ]
    );
}

#[tokio::test]
async fn repeated_failures_are_throttled_with_retry_after() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        assert_eq!(
            app.login_as("admin", "bad-password", None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Even the right password is refused while throttled.
    let reply = app
        .login_as("admin", ferro_testkit::ADMIN_PASSWORD, None)
        .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.code(), "too_many_requests");
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry));
    // The throttled attempt is logged against the user and their tenant, so
    // the tenant's login log shows it.
    let named: Vec<(bool, bool)> = sqlx::query_as(
        "SELECT user_id IS NOT NULL, tenant_id IS NOT NULL FROM login_logs WHERE outcome = 'throttled'",
    )
    .fetch_all(&app.db.owner().await)
    .await
    .unwrap();
    assert_eq!(named, [(true, true)]);
}

#[tokio::test]
async fn login_validates_its_body() {
    let app = TestApp::spawn().await;
    let reply = app
        .request(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "", "password": ""})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.field_errors(), ["username", "password"]);
    let reply = app
        .request(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "a"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    // An empty tenant is a bad request, not a tenant the user lacks.
    let reply = app
        .login_as(ADMIN_USERNAME, ADMIN_PASSWORD, Some(" "))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.field_errors(), ["tenant"]);
}

#[tokio::test]
async fn failures_from_one_address_are_throttled_whatever_the_user_name() {
    let app = TestApp::spawn_with(&[("LOGIN_MAX_FAILURES_PER_IP", "4")]).await;
    for n in 0..4 {
        let reply = app
            .login_as(&format!("guess-{n}"), "bad-password", None)
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    // A fifth name from the same address, with the admin's right password.
    let reply = app
        .login_as("admin", ferro_testkit::ADMIN_PASSWORD, None)
        .await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.body
    );
    assert!(reply.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_take_about_as_long() {
    let app = TestApp::spawn_with(&[("LOGIN_MAX_FAILURES_PER_USER", "100")]).await;
    // Warm up both paths (the first unknown user computes the stand-in hash).
    app.login_as("nobody", "whatever-password", None).await;
    app.login_as("admin", "wrong-password", None).await;
    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        app.login_as("nobody", "whatever-password", None).await;
        unknown.push(started.elapsed().as_secs_f64());
        let started = std::time::Instant::now();
        app.login_as("admin", "wrong-password", None).await;
        wrong.push(started.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (u, w) = (median(&mut unknown), median(&mut wrong));
    // Both pay for one argon2 verification; without the stand-in hash an
    // unknown user would answer in a fraction of the time.
    assert!(
        u / w > 0.5 && u / w < 2.0,
        "unknown {u:.3}s, wrong password {w:.3}s"
    );
}

#[tokio::test]
async fn refused_login_requests_are_logged_too() {
    let app = TestApp::spawn().await;
    let empty = app.login_as("admin", "", None).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.field_errors(), ["password"]);
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT username, outcome, reason FROM login_logs ORDER BY created_at")
            .fetch_all(&app.db.owner().await)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [("admin".into(), "failure".into(), "invalid request".into())]
    );
}

#[tokio::test]
async fn a_login_while_redis_is_down_is_refused_and_logged() {
    // Nothing listens on port 1: the throttle cannot count the attempt.
    let app = TestApp::spawn_with(&[("REDIS_URL", "redis://127.0.0.1:1/0")]).await;
    let reply = app
        .login_as("admin", ferro_testkit::ADMIN_PASSWORD, None)
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT outcome, reason FROM login_logs")
        .fetch_all(&app.db.owner().await)
        .await
        .unwrap();
    assert_eq!(
        rows,
        [("failure".into(), "login throttle unavailable".into())]
    );
}

#[tokio::test]
async fn parallel_guesses_cannot_slip_under_the_throttle() {
    let app = TestApp::spawn().await;
    let url = app.url("/api/v1/auth/login");
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let (client, url) = (app.client.clone(), url.clone());
            tokio::spawn(async move {
                let body = json!({"username": "admin", "password": "wrong-guess"});
                client.post(url).json(&body).send().await.unwrap().status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    let unauthorized = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        (unauthorized, throttled),
        (3, 9),
        "the limit is 3 per user name"
    );
}
