//! Tenant isolation and membership: another tenant's resources look
//! missing, deactivation and removal take access away at once, and a user's
//! other tenants are not touched.

use crate::support::TestApp;
use reqwest::StatusCode;
use serde_json::json;

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
