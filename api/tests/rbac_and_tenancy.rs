//! Permissions per role, changes taking effect at once, and tenant isolation.

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::TestApp;

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
async fn deactivated_and_removed_users_lose_access_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (uid, user) = app.create_user(&admin, "dora", &["viewer"]).await;
    let off = app
        .patch(
            &format!("/api/v1/users/{uid}"),
            &admin,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(off.status, StatusCode::OK);
    assert_eq!(off.body["is_active"], false);
    assert_eq!(
        app.get("/api/v1/devices", &user).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_as("dora", "password-123", None).await.status,
        StatusCode::UNAUTHORIZED
    );

    let on = app
        .patch(
            &format!("/api/v1/users/{uid}"),
            &admin,
            json!({"is_active": true}),
        )
        .await;
    assert_eq!(on.body["is_active"], true);
    let user = app.token("dora", "password-123").await;
    assert_eq!(
        app.delete(&format!("/api/v1/users/{uid}"), &admin)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/v1/devices", &user).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get(&format!("/api/v1/users/{uid}"), &admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let me = app.admin_token().await;
    let my_id = app.state.jwt.decode(&me).unwrap().sub;
    let self_off = app
        .patch(
            &format!("/api/v1/users/{my_id}"),
            &me,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(self_off.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn another_tenants_resources_answer_404_like_missing_ones() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let device = app.create_device(&admin, "default-router").await;
    let id = device["id"].as_str().unwrap();
    let (_, acme_admin) = app.tenant_with_admin("acme").await;

    let missing = app
        .get(
            &format!("/api/v1/devices/{}", uuid::Uuid::new_v4()),
            &acme_admin,
        )
        .await;
    let foreign = app.get(&format!("/api/v1/devices/{id}"), &acme_admin).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(foreign.body, missing.body);
    assert_eq!(
        app.patch(
            &format!("/api/v1/devices/{id}"),
            &acme_admin,
            json!({"name": "mine"})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/api/v1/devices/{id}"), &acme_admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let list = app.get("/api/v1/devices", &acme_admin).await;
    assert_eq!(list.body["total"], 0);

    // Same name in another tenant is fine; users and roles are separate too.
    app.create_device(&acme_admin, "default-router").await;
    let admin_id = app.state.jwt.decode(&admin).unwrap().sub;
    assert_eq!(
        app.get(&format!("/api/v1/users/{admin_id}"), &acme_admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let roles = app.get("/api/v1/roles", &acme_admin).await;
    assert_eq!(roles.body["total"], 3);
    let still = app.get(&format!("/api/v1/devices/{id}"), &admin).await;
    assert_eq!(still.body["name"], "default-router");
}
