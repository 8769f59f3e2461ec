//! Regression tests for the findings of the first security review.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::TestApp;

#[tokio::test]
async fn tenant_admins_cannot_take_over_the_platform_administrator() {
    let app = TestApp::spawn().await;
    let platform = app.admin_token().await;
    let platform_id = app.state.jwt.decode(&platform).unwrap().sub;
    let (_, tenant_admin) = app.create_user(&platform, "tadmin", &["admin"]).await;

    let takeover = app
        .patch(
            &format!("/api/v1/users/{platform_id}"),
            &tenant_admin,
            json!({"password": "owned-by-me-now"}),
        )
        .await;
    assert_eq!(takeover.status, StatusCode::FORBIDDEN);
    let deactivate = app
        .patch(
            &format!("/api/v1/users/{platform_id}"),
            &tenant_admin,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(deactivate.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.delete(&format!("/api/v1/users/{platform_id}"), &tenant_admin)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let roles = app
        .put(
            &format!("/api/v1/users/{platform_id}/roles"),
            &tenant_admin,
            json!({"roles": []}),
        )
        .await;
    assert_eq!(roles.status, StatusCode::FORBIDDEN);
    // The administrator is untouched.
    assert_eq!(
        app.login_as("admin", ferro_testkit::ADMIN_PASSWORD, None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn users_manage_alone_cannot_grant_more_than_it_holds() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let helpdesk = app
        .post(
            "/api/v1/roles",
            &admin,
            json!({"name": "helpdesk", "permissions": ["users:read", "users:manage"]}),
        )
        .await;
    assert_eq!(helpdesk.status, StatusCode::CREATED);
    let (helper_id, helper) = app.create_user(&admin, "helen", &["helpdesk"]).await;
    let promote = app
        .put(
            &format!("/api/v1/users/{helper_id}/roles"),
            &helper,
            json!({"roles": ["admin"]}),
        )
        .await;
    assert_eq!(promote.status, StatusCode::FORBIDDEN);
    let create = app
        .post(
            "/api/v1/users",
            &helper,
            json!({"username": "sidekick", "password": "password-123", "roles": ["operator"]}),
        )
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    let same = app
        .post(
            "/api/v1/users",
            &helper,
            json!({"username": "peer", "password": "password-123", "roles": ["helpdesk"]}),
        )
        .await;
    assert_eq!(
        same.status,
        StatusCode::CREATED,
        "granting what one holds is fine"
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
async fn deactivating_a_tenant_ends_its_sessions() {
    let app = TestApp::spawn().await;
    let (tenant, acme_admin) = app.tenant_with_admin("acme").await;
    assert_eq!(
        app.get("/api/v1/devices", &acme_admin).await.status,
        StatusCode::OK
    );
    let platform = app.admin_token().await;
    let off = app
        .patch(
            &format!("/api/v1/tenants/{tenant}"),
            &platform,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(off.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/v1/devices", &acme_admin).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_as("acme-admin", "password-123", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn removal_from_one_tenant_keeps_the_others() {
    let app = TestApp::spawn().await;
    let (acme, acme_admin) = app.tenant_with_admin("acme").await;
    let platform = app.admin_token().await;
    let (uid, default_session) = app.create_user(&platform, "nomad", &["viewer"]).await;
    // Make nomad a member of acme too (no API adds existing users yet).
    let owner = app.db.owner().await;
    sqlx::query("INSERT INTO memberships (tenant_id, user_id) VALUES ($1, $2)")
        .bind(acme)
        .bind(uid)
        .execute(&owner)
        .await
        .unwrap();
    sqlx::query("INSERT INTO membership_roles (tenant_id, user_id, role_id) SELECT $1, $2, id FROM roles WHERE tenant_id = $1 AND name = 'viewer'")
        .bind(acme).bind(uid).execute(&owner).await.unwrap();
    let acme_session = app
        .login_as("nomad", "password-123", Some("acme"))
        .await
        .body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_eq!(
        app.delete(&format!("/api/v1/users/{uid}"), &acme_admin)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/v1/devices", &acme_session).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/devices", &default_session).await.status,
        StatusCode::OK
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

#[tokio::test]
async fn unsupported_methods_get_a_405_problem() {
    let app = TestApp::spawn().await;
    let reply = app.request(Method::PUT, "/api/v1/health", None, None).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.code(), "method_not_allowed");
    assert_eq!(reply.headers["content-type"], "application/problem+json");
}

#[tokio::test]
async fn users_manage_cannot_take_over_a_more_powerful_user() {
    let app = TestApp::spawn().await;
    let platform = app.admin_token().await;
    app.post(
        "/api/v1/roles",
        &platform,
        json!({"name": "helpdesk", "permissions": ["users:read", "users:manage"]}),
    )
    .await;
    let (admin_id, _) = app.create_user(&platform, "tina", &["admin"]).await;
    let (viewer_id, _) = app.create_user(&platform, "vic", &["viewer"]).await;
    let (_, helper) = app.create_user(&platform, "helen", &["helpdesk"]).await;
    let reset = app
        .patch(
            &format!("/api/v1/users/{admin_id}"),
            &helper,
            json!({"password": "now-mine-123"}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.delete(&format!("/api/v1/users/{admin_id}"), &helper)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // A viewer holds devices:read etc., which the helpdesk does not: also refused.
    let reset = app
        .patch(
            &format!("/api/v1/users/{viewer_id}"),
            &helper,
            json!({"email": "v@example.com"}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::FORBIDDEN);
    app.token("tina", "password-123").await;
}

#[tokio::test]
async fn roles_manage_cannot_add_permissions_it_lacks() {
    let app = TestApp::spawn().await;
    let platform = app.admin_token().await;
    let role = app
        .post(
            "/api/v1/roles",
            &platform,
            json!({"name": "role-admin", "permissions": ["roles:read", "roles:manage"]}),
        )
        .await;
    let role_id = role.body["id"].as_str().unwrap().to_owned();
    let (_, ra) = app.create_user(&platform, "rob", &["role-admin"]).await;
    let widen = app
        .patch(
            &format!("/api/v1/roles/{role_id}"),
            &ra,
            json!({"permissions": ["roles:read", "roles:manage", "users:manage"]}),
        )
        .await;
    assert_eq!(widen.status, StatusCode::FORBIDDEN);
    let create = app
        .post(
            "/api/v1/roles",
            &ra,
            json!({"name": "sneaky", "permissions": ["audit:read"]}),
        )
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    let ok = app
        .post(
            "/api/v1/roles",
            &ra,
            json!({"name": "reader", "permissions": ["roles:read"]}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
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
async fn the_last_user_manager_of_a_tenant_stays() {
    let app = TestApp::spawn().await;
    let (_, acme_admin) = app.tenant_with_admin("acme").await;
    let me = app.get("/api/v1/auth/me", &acme_admin).await;
    let my_id = me.body["user"]["id"].as_str().unwrap().to_owned();
    let (other_id, _) = app
        .create_user(&acme_admin, "acme-second", &["admin"])
        .await;

    // The second admin may go while the first stays...
    let demoted = app
        .put(
            &format!("/api/v1/users/{other_id}/roles"),
            &acme_admin,
            json!({"roles": ["viewer"]}),
        )
        .await;
    assert_eq!(demoted.status, StatusCode::OK, "{}", demoted.body);
    // ...but the last one may neither demote themself...
    let alone = app
        .put(
            &format!("/api/v1/users/{my_id}/roles"),
            &acme_admin,
            json!({"roles": []}),
        )
        .await;
    assert_eq!(alone.status, StatusCode::CONFLICT, "{}", alone.body);
    assert!(
        alone.body["detail"]
            .as_str()
            .unwrap()
            .contains("users:manage")
    );
    // ...nor be deactivated or removed by a platform administrator.
    let platform = app.admin_token().await;
    let platform_in_acme = app
        .post(
            "/api/v1/auth/switch-tenant",
            &platform,
            json!({"tenant_id": me.body["tenant"]["id"]}),
        )
        .await
        .body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let off = app
        .patch(
            &format!("/api/v1/users/{my_id}"),
            &platform_in_acme,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(off.status, StatusCode::CONFLICT, "{}", off.body);
    let removed = app
        .delete(&format!("/api/v1/users/{my_id}"), &platform_in_acme)
        .await;
    assert_eq!(removed.status, StatusCode::CONFLICT);
    assert_eq!(
        app.get("/api/v1/users", &acme_admin).await.status,
        StatusCode::OK
    );
    // A viewer's own changes are not held up by the rule.
    let viewer_off = app
        .patch(
            &format!("/api/v1/users/{other_id}"),
            &acme_admin,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(viewer_off.status, StatusCode::OK);
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

#[tokio::test]
async fn a_role_change_cannot_take_the_last_user_manager_away() {
    let app = TestApp::spawn().await;
    let (_, acme_admin) = app.tenant_with_admin("acme").await;
    let me = app.get("/api/v1/auth/me", &acme_admin).await;
    let my_id = me.body["user"]["id"].as_str().unwrap().to_owned();
    let boss = app
        .post(
            "/api/v1/roles",
            &acme_admin,
            json!({"name": "boss", "permissions": ["users:manage", "users:read", "roles:manage", "roles:read"]}),
        )
        .await;
    assert_eq!(boss.status, StatusCode::CREATED, "{}", boss.body);
    let role = format!("/api/v1/roles/{}", boss.body["id"].as_str().unwrap());
    let (_, bossy) = app.create_user(&acme_admin, "bossy", &["boss"]).await;
    // The admin steps down; the custom role's holder is the last manager.
    let down = app
        .put(
            &format!("/api/v1/users/{my_id}/roles"),
            &acme_admin,
            json!({"roles": ["viewer"]}),
        )
        .await;
    assert_eq!(down.status, StatusCode::OK, "{}", down.body);

    let narrowed = app
        .patch(
            &role,
            &bossy,
            json!({"permissions": ["users:read", "roles:manage", "roles:read"]}),
        )
        .await;
    assert_eq!(narrowed.status, StatusCode::CONFLICT, "{}", narrowed.body);
    assert_eq!(app.delete(&role, &bossy).await.status, StatusCode::CONFLICT);
    // A change that keeps users:manage is fine.
    let described = app
        .patch(&role, &bossy, json!({"description": "runs the place"}))
        .await;
    assert_eq!(described.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/v1/users", &bossy).await.status,
        StatusCode::OK
    );
}
