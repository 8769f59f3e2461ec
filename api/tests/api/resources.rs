//! CRUD, pagination, filtering and validation of the resources.

use crate::support;
use crate::support::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn names(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn devices_crud_with_write_only_snmp_settings() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let created = app.create_device(&token, "core-1").await;
    assert_eq!(created["port"], 161);
    assert_eq!(created["status"], "unknown");
    assert!(created.get("snmp").is_none());
    assert!(!created.to_string().contains("s3cret-community"));
    let id = created["id"].as_str().unwrap();

    let got = app.get(&format!("/api/v1/devices/{id}"), &token).await;
    assert_eq!(got.body, created);
    let patched = app.patch(&format!("/api/v1/devices/{id}"), &token, json!({"host": "10.0.0.9", "tags": ["a", "b"], "snmp": {"version": "v1", "community": "new"}})).await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.body["host"], "10.0.0.9");
    assert_eq!(patched.body["tags"], json!(["a", "b"]));
    assert!(!patched.body.to_string().contains("new\""));
    // Moving the device without its community is refused: the stored one
    // would go to the new address, whoever chose it. The same address is
    // no move.
    for moved in [json!({"host": "203.0.113.9"}), json!({"port": 1161})] {
        let refused = app
            .patch(&format!("/api/v1/devices/{id}"), &token, moved)
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(refused.field_errors(), ["snmp"]);
    }
    let same = app
        .patch(
            &format!("/api/v1/devices/{id}"),
            &token,
            json!({"host": "10.0.0.9", "port": 161, "name": "core-1b"}),
        )
        .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    let name_back = app
        .patch(
            &format!("/api/v1/devices/{id}"),
            &token,
            json!({"name": "core-1"}),
        )
        .await;
    assert_eq!(name_back.status, StatusCode::OK);

    // A created resource says where it is.
    let web = app
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": "web-1", "protocol": "http", "host": "h"}),
        )
        .await;
    assert_eq!(web.status, StatusCode::CREATED);
    let location = web.headers["location"].to_str().unwrap().to_owned();
    assert_eq!(
        location,
        format!("/api/v1/devices/{}", web.body["id"].as_str().unwrap())
    );
    assert_eq!(app.get(&location, &token).await.body, web.body);

    let dup = app
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": "core-1", "protocol": "http", "host": "h"}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.field_errors(), ["name"]);

    let http = app.post("/api/v1/devices", &token, json!({"name": "web", "protocol": "http", "host": "example.com", "snmp": {"version": "v2c", "community": "x"}})).await;
    assert_eq!(http.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(http.field_errors(), ["snmp"]);
    let bad = app
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": "", "protocol": "ftp", "host": "h"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad = app.post("/api/v1/devices", &token, json!({"name": " ", "protocol": "http", "host": "bad host!", "port": 0, "tags": ["no spaces"]})).await;
    assert_eq!(bad.field_errors(), ["name", "host", "port", "tags"]);

    assert_eq!(
        app.delete(&format!("/api/v1/devices/{id}"), &token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/api/v1/devices/{id}"), &token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/api/v1/devices/{id}"), &token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn devices_paginate_filter_and_sort_stably() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    for i in 0..7 {
        let body = if i % 2 == 0 {
            json!({"name": format!("snmp-{i}"), "protocol": "snmp", "host": format!("10.0.0.{i}"), "tags": ["even"], "snmp": {"version": "v2c", "community": "c"}})
        } else {
            json!({"name": format!("web-{i}"), "protocol": "http", "host": format!("web{i}.example.com")})
        };
        assert_eq!(
            app.post("/api/v1/devices", &token, body).await.status,
            StatusCode::CREATED
        );
    }
    let page1 = app.get("/api/v1/devices?page=1&size=3", &token).await.body;
    let page3 = app.get("/api/v1/devices?page=3&size=3", &token).await.body;
    assert_eq!(
        (
            page1["total"].as_i64(),
            page1["page"].as_i64(),
            page1["size"].as_i64()
        ),
        (Some(7), Some(1), Some(3))
    );
    assert_eq!(names(&page1), ["snmp-0", "web-1", "snmp-2"]);
    assert_eq!(names(&page3), ["snmp-6"]);

    let snmp = app
        .get("/api/v1/devices?protocol=snmp&sort=-name", &token)
        .await
        .body;
    assert_eq!(names(&snmp), ["snmp-6", "snmp-4", "snmp-2", "snmp-0"]);
    let q = app.get("/api/v1/devices?q=WEB5", &token).await.body;
    assert_eq!(names(&q), ["web-5"]);
    let literal = app.get("/api/v1/devices?q=%25", &token).await.body;
    assert_eq!(literal["total"], 0, "% is matched literally");
    let tagged = app
        .get("/api/v1/devices?tag=even&size=2", &token)
        .await
        .body;
    assert_eq!(tagged["total"], 4);

    for bad in [
        "page=0",
        "size=101",
        "sort=host",
        "protocol=ftp",
        "page=abc",
        "unknown=1",
    ] {
        let reply = app.get(&format!("/api/v1/devices?{bad}"), &token).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn users_are_created_listed_updated_and_validated() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let created = app
        .post("/api/v1/users", &admin, json!({"username": "alice", "password": "correct horse", "email": "alice@example.com", "roles": ["operator", "viewer"]}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["roles"], json!(["operator", "viewer"]));
    assert!(created.body.get("password_hash").is_none());
    let id = created.body["id"].as_str().unwrap();

    let list = app.get("/api/v1/users?q=ali", &admin).await;
    assert_eq!(list.body["total"], 1);
    let all = app.get("/api/v1/users", &admin).await;
    assert_eq!(all.body["total"], 2);

    let dup = app
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "ALICE", "password": "correct horse"}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.field_errors(), ["username"]);
    let bad = app
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "a b", "password": "short", "email": "nope", "roles": ["wizard"]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.field_errors(), ["username", "password", "email"]);
    let unknown_role = app
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "bob", "password": "password-1", "roles": ["wizard"]}),
        )
        .await;
    assert_eq!(unknown_role.field_errors(), ["roles"]);
    // Nothing half-written: bob does not exist.
    assert_eq!(
        app.get("/api/v1/users?q=bob", &admin).await.body["total"],
        0
    );

    let patched = app
        .patch(
            &format!("/api/v1/users/{id}"),
            &admin,
            json!({"email": "a@example.org", "password": "another-pass"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.body["email"], "a@example.org");
    app.token("alice", "another-pass").await;

    // null clears what may be empty, and is refused, naming the field, for
    // what may not; a field left out keeps its value.
    let cleared = app
        .patch(
            &format!("/api/v1/users/{id}"),
            &admin,
            json!({"email": null}),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);
    assert!(cleared.body["email"].is_null());
    let refused = app
        .patch(
            &format!("/api/v1/users/{id}"),
            &admin,
            json!({"is_active": null}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.field_errors(), ["is_active"]);
    let device = app.create_device(&admin, "kept-name").await;
    let device_id = device["id"].as_str().unwrap();
    for body in [json!({"name": null}), json!({"tags": null})] {
        let refused = app
            .patch(
                &format!("/api/v1/devices/{device_id}"),
                &admin,
                body.clone(),
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let kept = app
        .get(&format!("/api/v1/devices/{device_id}"), &admin)
        .await
        .body;
    assert_eq!(
        (kept["name"].as_str(), kept["tags"].clone()),
        (Some("kept-name"), json!(["lab"]))
    );
}

#[tokio::test]
async fn roles_are_managed_and_builtins_are_protected() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let roles = app.get("/api/v1/roles", &admin).await.body;
    assert_eq!(names(&roles), ["admin", "operator", "viewer"]);
    let viewer_id = roles["items"][2]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.patch(
            &format!("/api/v1/roles/{viewer_id}"),
            &admin,
            json!({"description": "x"})
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.delete(&format!("/api/v1/roles/{viewer_id}"), &admin)
            .await
            .status,
        StatusCode::CONFLICT
    );

    let bad = app
        .post(
            "/api/v1/roles",
            &admin,
            json!({"name": "Bad Name", "permissions": ["devices:fly", "tenants:manage"]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.field_errors(), ["name", "permissions", "permissions"]);
    let ok = app
        .post(
            "/api/v1/roles",
            &admin,
            json!({"name": "auditor", "description": "logs", "permissions": ["audit:read"]}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    assert_eq!(ok.body["permissions"], json!(["audit:read"]));
    let dup = app
        .post(
            "/api/v1/roles",
            &admin,
            json!({"name": "auditor", "permissions": []}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);

    let perms = app.get("/api/v1/permissions", &admin).await;
    assert_eq!(perms.body["total"], ferro_auth::Permission::ALL.len());
    assert_eq!(
        perms.body["items"].as_array().unwrap().len(),
        ferro_auth::Permission::ALL.len()
    );
}

#[tokio::test]
async fn platform_administrators_manage_tenants() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let created = app
        .post(
            "/api/v1/tenants",
            &admin,
            json!({"slug": "globex", "name": "Globex"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let dup = app
        .post(
            "/api/v1/tenants",
            &admin,
            json!({"slug": "globex", "name": "Again"}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.field_errors(), ["slug"]);
    let bad = app
        .post(
            "/api/v1/tenants",
            &admin,
            json!({"slug": "Not_A_Slug", "name": ""}),
        )
        .await;
    assert_eq!(bad.field_errors(), ["slug", "name"]);

    let list = app.get("/api/v1/tenants", &admin).await.body;
    assert_eq!(list["total"], 2);
    let renamed = app
        .patch(
            &format!("/api/v1/tenants/{id}"),
            &admin,
            json!({"name": "Globex Corp", "is_active": false}),
        )
        .await;
    assert_eq!(renamed.body["name"], "Globex Corp");
    assert_eq!(renamed.body["is_active"], false);
    let switch = app
        .post(
            "/api/v1/auth/switch-tenant",
            &admin,
            json!({"tenant_id": id}),
        )
        .await;
    assert_eq!(
        switch.status,
        StatusCode::FORBIDDEN,
        "inactive tenants cannot be entered"
    );
    assert_eq!(
        app.get(&format!("/api/v1/tenants/{}", uuid::Uuid::new_v4()), &admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn mutating_requests_are_audited_with_route_templates() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let device = app.create_device(&admin, "audited").await;
    let id = device["id"].as_str().unwrap();
    app.patch(&format!("/api/v1/devices/{id}"), &admin, json!({"port": 0}))
        .await;
    let audit = app.get("/api/v1/audit-logs", &admin).await.body;
    let rows: Vec<(String, String, i64)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().into(),
                r["route"].as_str().unwrap().into(),
                r["status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("PATCH".into(), "/api/v1/devices/{id}".into(), 422),
            ("POST".into(), "/api/v1/devices".into(), 201),
        ]
    );
    let first = &audit["items"][0];
    assert_eq!(first["ip"], "127.0.0.1");
    assert!(first["request_id"].as_str().unwrap().len() >= 8);
    let filtered = app.get("/api/v1/audit-logs?method=post", &admin).await.body;
    assert_eq!(filtered["total"], 1);
}

#[tokio::test]
async fn tenants_roles_and_users_are_searched_with_q() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for (slug, name) in [("acme", "Acme Corp"), ("globex", "Globex 100%")] {
        let created = app
            .post(
                "/api/v1/tenants",
                &admin,
                json!({"slug": slug, "name": name}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    }
    let role = app
        .post(
            "/api/v1/roles",
            &admin,
            json!({"name": "auditor", "description": "Reads the LOGS", "permissions": ["audit:read"]}),
        )
        .await;
    assert_eq!(role.status, StatusCode::CREATED, "{}", role.body);
    app.create_user(&admin, "jane.doe", &["viewer"]).await;

    let names = |reply: &support::Reply, field: &str| -> Vec<String> {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(
            reply.body["total"].as_u64().unwrap() as usize,
            reply.body["items"].as_array().unwrap().len()
        );
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i[field].as_str().unwrap().to_owned())
            .collect()
    };
    let tenants = |q: &'static str| {
        let (app, admin) = (&app, admin.clone());
        async move { app.get(&format!("/api/v1/tenants?q={q}"), &admin).await }
    };
    assert_eq!(names(&tenants("CORP").await, "slug"), ["acme"]);
    assert_eq!(names(&tenants("glob").await, "slug"), ["globex"]);
    // `%` is a character to find, not a wildcard.
    assert_eq!(names(&tenants("100%25").await, "slug"), ["globex"]);
    assert!(names(&tenants("%25%25").await, "slug").is_empty());
    let roles = app.get("/api/v1/roles?q=logs", &admin).await;
    assert_eq!(names(&roles, "name"), ["auditor"]);
    let roles = app.get("/api/v1/roles?q=VIEW", &admin).await;
    assert_eq!(names(&roles, "name"), ["viewer"]);
    let users = app.get("/api/v1/users?q=JANE", &admin).await;
    assert_eq!(names(&users, "username"), ["jane.doe"]);

    let long = "x".repeat(201);
    for list in ["tenants", "roles", "users"] {
        let reply = app.get(&format!("/api/v1/{list}?q={long}"), &admin).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{list}");
        assert_eq!(reply.field_errors(), ["q"], "{list}");
    }
}
