//! Authentication and sessions over real HTTP, Redis and PostgreSQL.

mod support;

use ferro_testkit::{ADMIN_PASSWORD, ADMIN_USERNAME};
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::TestApp;

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
async fn logout_ends_the_session_at_once() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    assert_eq!(
        app.get("/api/v1/auth/me", &token).await.status,
        StatusCode::OK
    );
    let out = app
        .request(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let after = app.get("/api/v1/auth/me", &token).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.headers["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_session() {
    let app = TestApp::spawn().await;
    let first = app
        .login_as("admin", ferro_testkit::ADMIN_PASSWORD, None)
        .await
        .body;
    let r1 = first["refresh_token"].as_str().unwrap();
    let second = app
        .request(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r1})),
        )
        .await;
    assert_eq!(second.status, StatusCode::OK);
    let r2 = second.body["refresh_token"].as_str().unwrap();
    let a2 = second.body["access_token"].as_str().unwrap();
    assert_ne!(r1, r2);
    assert_eq!(app.get("/api/v1/auth/me", a2).await.status, StatusCode::OK);
    // Two more rotations: r1 is now three tokens old.
    let (mut current, mut access) = (r2.to_owned(), a2.to_owned());
    for _ in 0..2 {
        let next = app
            .request(
                Method::POST,
                "/api/v1/auth/refresh",
                None,
                Some(json!({"refresh_token": current})),
            )
            .await;
        assert_eq!(next.status, StatusCode::OK);
        current = next.body["refresh_token"].as_str().unwrap().to_owned();
        access = next.body["access_token"].as_str().unwrap().to_owned();
    }
    let (r2, a2) = (current.as_str(), access.as_str());

    // Replaying any rotated token, however old, revokes the whole session.
    let replay = app
        .request(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r1})),
        )
        .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert!(
        replay.body["detail"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{}",
        replay.body
    );
    assert_eq!(
        app.get("/api/v1/auth/me", a2).await.status,
        StatusCode::UNAUTHORIZED
    );
    let current = app
        .request(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r2})),
        )
        .await;
    assert_eq!(current.status, StatusCode::UNAUTHORIZED);

    let garbage = app
        .request(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": "x.y"})),
        )
        .await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forged_expired_and_missing_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let me = "/api/v1/auth/me";
    // Missing, wrong scheme.
    assert_eq!(
        app.request(Method::GET, me, None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let basic = app
        .client
        .get(app.url(me))
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    // Tampered signature.
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(app.get(me, &forged).await.status, StatusCode::UNAUTHORIZED);
    // alg: none with the same claims.
    let payload = token.split('.').nth(1).unwrap();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    assert_eq!(app.get(me, &none).await.status, StatusCode::UNAUTHORIZED);
    // Signed with another secret.
    let other = ferro_auth::jwt::JwtKeys::new(b"some-other-secret-some-other-secret", 60);
    let claims = app.state.jwt.decode(&token).unwrap();
    let foreign = other.issue(claims.sub, claims.tid, claims.sid, claims.generation);
    assert_eq!(app.get(me, &foreign).await.status, StatusCode::UNAUTHORIZED);
    // Expired, with the right key and a live session.
    let expired = ferro_auth::jwt::JwtKeys::new(b"test-secret-test-secret-test-secret!", -120)
        .issue(claims.sub, claims.tid, claims.sid, claims.generation);
    let reply = app.get(me, &expired).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.body["detail"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn switch_tenant_moves_the_session_and_old_tokens_stop_working() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let created = app
        .post(
            "/api/v1/tenants",
            &admin,
            json!({"slug": "acme", "name": "Acme"}),
        )
        .await;
    let acme = created.body["id"].as_str().unwrap().to_owned();
    let switched = app
        .post(
            "/api/v1/auth/switch-tenant",
            &admin,
            json!({"tenant_id": acme}),
        )
        .await;
    assert_eq!(switched.status, StatusCode::OK);
    let in_acme = switched.body["access_token"].as_str().unwrap();
    let me = app.get("/api/v1/auth/me", in_acme).await;
    assert_eq!(me.body["tenant"]["slug"], "acme");
    // At login, the tenant may be named by its slug in any case, or by its
    // id in either case.
    for named in ["ACME", acme.to_uppercase().as_str()] {
        let login = app
            .login_as(ADMIN_USERNAME, ADMIN_PASSWORD, Some(named))
            .await;
        assert_eq!(login.status, StatusCode::OK, "{named}: {:?}", login.body);
        assert_eq!(login.body["tenant_id"], acme.as_str());
    }
    assert_eq!(
        app.get("/api/v1/auth/me", &admin).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Switching back does not bring the tokens from before the switch back.
    let default = me.body["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["slug"] == "default")
        .unwrap()["id"]
        .clone();
    let back = app
        .post(
            "/api/v1/auth/switch-tenant",
            in_acme,
            json!({"tenant_id": default}),
        )
        .await;
    assert_eq!(back.status, StatusCode::OK);
    for stale in [&admin, in_acme] {
        assert_eq!(
            app.get("/api/v1/auth/me", stale).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let refreshed = app
        .request(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": back.body["refresh_token"]})),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK);
    let now = refreshed.body["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/auth/me", now).await.status, StatusCode::OK);

    // A plain user may not switch into a tenant they do not belong to.
    let admin = app.admin_token().await;
    let (_, viewer) = app.create_user(&admin, "vera", &["viewer"]).await;
    let denied = app
        .post(
            "/api/v1/auth/switch-tenant",
            &viewer,
            json!({"tenant_id": acme}),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let denied = app.login_as("vera", "password-123", Some("acme")).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_session_that_changes_the_password_lives_on() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.create_user(&admin, "kim", &["viewer"]).await;
    let pair = app.login_as("kim", "password-123", None).await.body;
    let access = pair["access_token"].as_str().unwrap();
    let changed = app
        .post(
            "/api/v1/auth/change-password",
            access,
            json!({"current_password": "password-123", "new_password": "new-password-1"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    // The session born before the change is the one that made it: it keeps
    // working past its next refresh (and past the periodic access check,
    // which compares the same two instants).
    let refreshed = app
        .request(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": pair["refresh_token"]})),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let next = refreshed.body["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/api/v1/auth/me", next).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sessions_can_be_listed_and_revoked_and_password_change_ends_the_others() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, first) = app.create_user(&admin, "sam", &["viewer"]).await;
    let second = app.token("sam", "password-123").await;

    let list = app.get("/api/v1/auth/sessions", &first).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(
        (list.body["total"].as_i64(), list.body["page"].as_i64()),
        (Some(2), Some(1))
    );
    let sessions = list.body["items"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let second_page = app.get("/api/v1/auth/sessions?page=2&size=1", &first).await;
    assert_eq!(second_page.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(second_page.body["total"], 2);
    assert_eq!(
        app.get("/api/v1/auth/sessions?size=0", &first)
            .await
            .field_errors(),
        ["size"]
    );

    // Someone else's session id is not found.
    let other_sid = app.state.jwt.decode(&admin).unwrap().sid;
    assert_eq!(
        app.delete(&format!("/api/v1/auth/sessions/{other_sid}"), &first)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let wrong = app
        .post(
            "/api/v1/auth/change-password",
            &first,
            json!({"current_password": "nope", "new_password": "new-password-1"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong.field_errors(), ["current_password"]);
    let weak = app
        .post(
            "/api/v1/auth/change-password",
            &first,
            json!({"current_password": "password-123", "new_password": "short"}),
        )
        .await;
    assert_eq!(weak.field_errors(), ["new_password"]);
    let changed = app
        .post(
            "/api/v1/auth/change-password",
            &first,
            json!({"current_password": "password-123", "new_password": "new-password-1"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/auth/me", &first).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/auth/me", &second).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_as("sam", "password-123", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.token("sam", "new-password-1").await;

    let sid = app.state.jwt.decode(&first).unwrap().sid;
    assert_eq!(
        app.delete(&format!("/api/v1/auth/sessions/{sid}"), &first)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/v1/auth/me", &first).await.status,
        StatusCode::UNAUTHORIZED
    );
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
