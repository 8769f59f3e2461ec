//! The API's documentation: the OpenAPI document lists exactly the routes
//! the router serves, and the documentation pages load nothing from outside.

use crate::support::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::collections::BTreeSet;

#[tokio::test]
async fn the_openapi_document_and_the_router_list_the_same_routes() {
    let app = TestApp::spawn().await;
    let doc = app.openapi().await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    // Swagger UI's bundle may be cached; the document, which changes with
    // every release, is not.
    let bundle = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
    assert_eq!(bundle.headers()["cache-control"], "public, max-age=86400");
    let document = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert!(document.headers().get("cache-control").is_none());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    // Every documented operation is routed (no route-level 404 or 405)...
    for (method, path) in &documented {
        let concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
        let reply = app
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                &concrete,
                None,
                None,
            )
            .await;
        assert_ne!(
            reply.code(),
            "route_not_found",
            "{method} {path} is documented but not routed"
        );
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
    }
    // ...and every API route the contract names is documented.
    let expected = [
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/logout"),
        ("GET", "/api/v1/auth/me"),
        ("POST", "/api/v1/auth/switch-tenant"),
        ("GET", "/api/v1/tenants"),
        ("POST", "/api/v1/tenants"),
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("GET", "/api/v1/roles"),
        ("POST", "/api/v1/roles"),
        ("GET", "/api/v1/permissions"),
        ("GET", "/api/v1/devices"),
        ("POST", "/api/v1/devices"),
        ("GET", "/api/v1/devices/{id}"),
        ("PATCH", "/api/v1/devices/{id}"),
        ("DELETE", "/api/v1/devices/{id}"),
        ("GET", "/api/v1/audit-logs"),
        ("GET", "/api/v1/login-logs"),
        ("GET", "/api/v1/health"),
        ("GET", "/api/v1/health/ready"),
        ("GET", "/health"),
        ("GET", "/metrics"),
    ];
    for (m, p) in expected {
        assert!(
            documented.contains(&(m.to_owned(), p.to_owned())),
            "{m} {p} is not documented"
        );
    }
    // Documented protected operations declare the bearer scheme and their errors.
    let devices = &doc["paths"]["/api/v1/devices"]["post"];
    assert!(devices["security"].is_array());
    for status in ["201", "400", "401", "403", "409", "413", "415", "422"] {
        assert!(
            devices["responses"][status].is_object(),
            "POST /devices lacks {status}"
        );
    }
    // The problems a request itself can earn are on every operation they
    // can happen to: a bad query (422), a bad path id (400).
    assert!(doc["paths"]["/api/v1/tenants"]["get"]["responses"]["422"].is_object());
    assert!(doc["paths"]["/api/v1/devices/{id}"]["get"]["responses"]["400"].is_object());
    assert!(doc["paths"]["/api/v1/auth/me"]["get"]["responses"]["422"].is_null());
    // Every request body has an example, and every operation its 503.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(schema) =
                op["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str()
            {
                let name = schema.rsplit('/').next().unwrap();
                let body = &doc["components"]["schemas"][name];
                let fields_with_examples = body["properties"]
                    .as_object()
                    .is_some_and(|p| p.values().all(|f| !f["example"].is_null()));
                assert!(
                    !body["example"].is_null() || fields_with_examples,
                    "{method} {path}: {name} has no example"
                );
            }
            assert!(
                op["responses"]["503"].is_object(),
                "{method} {path} does not document its 503"
            );
        }
    }
    // Fields the answers always carry (null when unset) are required, and
    // the paging limits are in the parameters.
    let job_required = doc["components"]["schemas"]["Job"]["required"]
        .as_array()
        .unwrap();
    for field in ["device_id", "error", "started_at", "finished_at"] {
        assert!(job_required.contains(&json!(field)), "Job.{field}");
    }
    let size = doc["paths"]["/api/v1/devices"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "size")
        .unwrap();
    assert_eq!(size["schema"]["maximum"], 100);
}

#[tokio::test]
async fn docs_pages_are_served_without_external_scripts() {
    let app = TestApp::spawn().await;
    for (path, needle) in [
        ("/docs/", "swagger-ui"),
        ("/redoc", "/redoc/redoc.standalone.js"),
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let html = res.text().await.unwrap();
        assert!(html.contains(needle), "{path}");
        assert!(
            !html.contains("https://"),
            "{path} loads something from the internet"
        );
    }
    let script = app
        .client
        .get(app.url("/redoc/redoc.standalone.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.bytes().await.unwrap().len() > 500_000);
    let swagger_js = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(swagger_js.status(), StatusCode::OK);
}
