//! Permissions: what the built-in roles grant, role changes taking effect
//! at once, nobody granting or taking power over more than they hold, and
//! every tenant keeping someone who can manage its users.

use crate::support::TestApp;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn builtin_roles_grant_what_they_say() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, viewer) = app.create_user(&admin, "vic", &["viewer"]).await;
    let (_, operator) = app.create_user(&admin, "olga", &["operator"]).await;

    assert_eq!(
        app.get("/api/v1/devices", &viewer).await.status,
        StatusCode::OK
    );
    let denied = app
        .post(
            "/api/v1/devices",
            &viewer,
            json!({"name": "x", "protocol": "http", "host": "h"}),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.code(), "forbidden");
    assert!(
        denied.body["detail"]
            .as_str()
            .unwrap()
            .contains("devices:write")
    );

    app.create_device(&operator, "op-device").await;
    for path in [
        "/api/v1/users",
        "/api/v1/roles",
        "/api/v1/audit-logs",
        "/api/v1/login-logs",
        "/api/v1/tenants",
        "/api/v1/permissions",
    ] {
        assert_eq!(
            app.get(path, &operator).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    // A tenant admin who is not a platform administrator cannot manage tenants.
    let (_, tenant_admin) = app.create_user(&admin, "tina", &["admin"]).await;
    assert_eq!(
        app.get("/api/v1/users", &tenant_admin).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/tenants", &tenant_admin).await.status,
        StatusCode::FORBIDDEN
    );
    let create = app
        .post(
            "/api/v1/tenants",
            &tenant_admin,
            json!({"slug": "x", "name": "x"}),
        )
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn role_changes_take_effect_on_the_next_request() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (uid, user) = app.create_user(&admin, "rita", &[]).await;
    assert_eq!(
        app.get("/api/v1/devices", &user).await.status,
        StatusCode::FORBIDDEN
    );

    let role = app
        .post(
            "/api/v1/roles",
            &admin,
            json!({"name": "device-reader", "permissions": ["devices:read"]}),
        )
        .await;
    assert_eq!(role.status, StatusCode::CREATED, "{}", role.body);
    let role_id = role.body["id"].as_str().unwrap().to_owned();
    let set = app
        .put(
            &format!("/api/v1/users/{uid}/roles"),
            &admin,
            json!({"roles": ["device-reader"]}),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK);
    assert_eq!(set.body["roles"], json!(["device-reader"]));
    assert_eq!(
        app.get("/api/v1/devices", &user).await.status,
        StatusCode::OK
    );

    // Widen the role, then delete it: both apply at once, same token.
    let widened = app
        .patch(
            &format!("/api/v1/roles/{role_id}"),
            &admin,
            json!({"permissions": ["devices:read", "devices:write"]}),
        )
        .await;
    assert_eq!(widened.status, StatusCode::OK);
    // A change of permissions alone changes the role.
    assert_ne!(widened.body["updated_at"], role.body["updated_at"]);
    app.create_device(&user, "rita-device").await;
    assert_eq!(
        app.delete(&format!("/api/v1/roles/{role_id}"), &admin)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/v1/devices", &user).await.status,
        StatusCode::FORBIDDEN
    );
}

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
