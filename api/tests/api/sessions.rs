//! Sessions: logout, refresh-token rotation and reuse, forged and expired
//! tokens, switching tenant, listing and revoking sessions, and what a
//! password change or deactivation does to the sessions that exist.

use crate::support::TestApp;
use ferro_testkit::{ADMIN_PASSWORD, ADMIN_USERNAME};
use reqwest::{Method, StatusCode};
use serde_json::json;

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
async fn a_guessed_refresh_secret_neither_works_nor_ends_the_session() {
    let app = TestApp::spawn().await;
    let pair = app
        .login_as("admin", ferro_testkit::ADMIN_PASSWORD, None)
        .await
        .body;
    let token = pair["access_token"].as_str().unwrap();
    let sid = app.state.jwt.decode(token).unwrap().sid;
    let guess = format!("{sid}.{}", "ab".repeat(32));
    let reply = app
        .request(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": guess})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/api/v1/auth/me", token).await.status,
        StatusCode::OK,
        "the session survives"
    );
    let real = app
        .request(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": pair["refresh_token"]})),
        )
        .await;
    assert_eq!(real.status, StatusCode::OK);
}

#[tokio::test]
async fn switching_with_a_stolen_access_token_is_caught_when_the_owner_refreshes() {
    let app = TestApp::spawn().await;
    let pair = app
        .login_as("admin", ferro_testkit::ADMIN_PASSWORD, None)
        .await
        .body;
    let stolen = pair["access_token"].as_str().unwrap();
    let default = app.db.default_tenant();
    let thief = app
        .post(
            "/api/v1/auth/switch-tenant",
            stolen,
            json!({"tenant_id": default}),
        )
        .await;
    assert_eq!(thief.status, StatusCode::OK);
    let thief_access = thief.body["access_token"].as_str().unwrap().to_owned();
    // The owner's refresh token is now the previous one: using it is a replay.
    let owner = app
        .request(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": pair["refresh_token"]})),
        )
        .await;
    assert_eq!(owner.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/api/v1/auth/me", &thief_access).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn deactivated_users_cannot_refresh() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (uid, _) = app.create_user(&admin, "frank", &["viewer"]).await;
    let pair = app.login_as("frank", "password-123", None).await.body;
    // Deactivate behind the api's back (as if the session revocation had failed).
    let owner = app.db.owner().await;
    sqlx::query("UPDATE users SET is_active = false WHERE id = $1")
        .bind(uid)
        .execute(&owner)
        .await
        .unwrap();
    let refreshed = app
        .request(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": pair["refresh_token"]})),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_born_before_a_password_change_are_void() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (uid, token) = app.create_user(&admin, "pat", &["viewer"]).await;
    // As if a login had raced a password reset: the change is newer than the session.
    let owner = app.db.owner().await;
    sqlx::query(
        "UPDATE users SET password_changed_at = now() + interval '5 seconds' WHERE id = $1",
    )
    .bind(uid)
    .execute(&owner)
    .await
    .unwrap();
    app.state
        .sessions
        .bump_authz_epoch(app.db.default_tenant())
        .await
        .unwrap();
    assert_eq!(
        app.get("/api/v1/devices", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_manager_changes_their_own_password_only_with_the_current_one() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let me = app.get("/api/v1/auth/me", &admin).await;
    let my_id = me.body["user"]["id"].as_str().unwrap();
    let reset = app
        .patch(
            &format!("/api/v1/users/{my_id}"),
            &admin,
            json!({"password": "a-new-password-1"}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reset.field_errors(), ["password"]);
    // Nothing changed: the session lives and the old password still works.
    assert_eq!(
        app.get("/api/v1/auth/me", &admin).await.status,
        StatusCode::OK
    );
    app.admin_token().await;
}

/// A password reset ends every session of the user, those of logins still
/// checking the old password when it committed included.
#[tokio::test]
async fn a_password_reset_ends_the_logins_that_raced_it() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (uid, _) = app.create_user(&admin, "racer", &["viewer"]).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (client, url, stop) = (
            app.client.clone(),
            app.url("/api/v1/auth/login"),
            stop.clone(),
        );
        loops.push(tokio::spawn(async move {
            let mut tokens = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let reply = client
                    .post(&url)
                    .json(&json!({"username": "racer", "password": "password-123"}))
                    .send()
                    .await
                    .unwrap();
                if reply.status() == StatusCode::OK {
                    let body: serde_json::Value = reply.json().await.unwrap();
                    tokens.push(body["access_token"].as_str().unwrap().to_owned());
                }
            }
            tokens
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let reset = app
        .patch(
            &format!("/api/v1/users/{uid}"),
            &admin,
            json!({"password": "a-brand-new-password"}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut live = 0;
    let mut tried = 0;
    for handle in loops {
        for token in handle.await.unwrap() {
            tried += 1;
            if app.get("/api/v1/auth/me", &token).await.status == StatusCode::OK {
                live += 1;
            }
        }
    }
    assert!(tried > 0, "no login got through");
    assert_eq!(
        live, 0,
        "{live} of {tried} sessions from the old password live on"
    );
}
