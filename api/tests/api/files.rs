//! Uploaded files (issue 25): stored as they stream, named by id on disk,
//! listed, downloaded and deleted per tenant; refused whole when too large
//! or malformed, with nothing left behind; through nginx too.

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::nginx::Nginx;
use crate::support::TestApp;

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn upload_to(url: &str, token: &str, form: Form) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn file(name: &str, bytes: Vec<u8>) -> Form {
    Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()))
}

/// Every entry under the app's uploads directory, as paths relative to it.
fn stored(app: &TestApp) -> Vec<String> {
    let root = &app.state.config.uploads.dir;
    let mut out = Vec::new();
    for tenant in std::fs::read_dir(root).unwrap().flatten() {
        if tenant.path().is_dir() {
            for f in std::fs::read_dir(tenant.path()).unwrap().flatten() {
                out.push(format!(
                    "{}/{}",
                    tenant.file_name().to_string_lossy(),
                    f.file_name().to_string_lossy()
                ));
            }
        } else {
            out.push(tenant.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

#[tokio::test]
async fn a_file_is_stored_listed_downloaded_and_deleted() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let text = b"TEST-MIB DEFINITIONS ::= BEGIN\nEND\n".to_vec();
    let (status, body) = upload_to(
        &app.url("/api/v1/files"),
        &token,
        file("../../TEST-MIB.txt", text.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(body["name"], "TEST-MIB.txt", "the name's last segment only");
    assert_eq!(body["size"], text.len());
    assert_eq!(body["sha256"], hex(&text));
    assert_eq!(body["content_type"], "text/plain");

    // On disk: under the tenant, named by the id, nothing else anywhere.
    let tenant = app.get("/api/v1/auth/me", &token).await.body["tenant"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(stored(&app), vec![format!("{tenant}/{id}")]);

    let list = app.get("/api/v1/files", &token).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["items"][0]["id"], id.as_str());
    let one = app.get(&format!("/api/v1/files/{id}"), &token).await;
    assert_eq!(one.body, body);

    let res = app
        .client
        .get(app.url(&format!("/api/v1/files/{id}/content")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"TEST-MIB.txt\"; filename*=UTF-8''TEST-MIB.txt"
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), text.as_slice());

    let deleted = app.delete(&format!("/api/v1/files/{id}"), &token).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(stored(&app), Vec::<String>::new(), "the bytes go too");
    for path in [
        format!("/api/v1/files/{id}"),
        format!("/api/v1/files/{id}/content"),
    ] {
        assert_eq!(app.get(&path, &token).await.status, StatusCode::NOT_FOUND);
    }
    let again = app.delete(&format!("/api/v1/files/{id}"), &token).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_upload_over_the_limit_is_a_413_and_leaves_nothing() {
    let app = TestApp::spawn_with(&[("UPLOAD_MAX_BYTES", "300000")]).await;
    let token = app.admin_token().await;
    let url = app.url("/api/v1/files");

    let (status, body) = upload_to(&url, &token, file("big.bin", vec![7u8; 300_001])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    assert!(
        body["detail"].as_str().unwrap().contains("300000 bytes"),
        "{body}"
    );
    assert_eq!(
        stored(&app),
        Vec::<String>::new(),
        "no partial file is left"
    );
    assert_eq!(app.get("/api/v1/files", &token).await.body["total"], 0);

    // Exactly the limit is taken.
    let (status, body) = upload_to(&url, &token, file("edge.bin", vec![0u8; 300_000])).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["content_type"], "application/octet-stream");
}

#[tokio::test]
async fn uploads_are_not_held_to_the_json_body_limit_and_pass_nginx() {
    let app = TestApp::spawn().await;
    let nginx = Nginx::start(&app);
    let token = app.admin_token().await;
    // 5 MiB: over MAX_BODY_BYTES (1 MiB) and nginx's general limit (1 MiB).
    let bytes: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let (status, body) = upload_to(
        &nginx.url("/api/v1/files"),
        &token,
        file("blob.bin", bytes.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["sha256"], hex(&bytes));
    let id = body["id"].as_str().unwrap();
    let res = reqwest::Client::new()
        .get(nginx.url(&format!("/api/v1/files/{id}/content")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().len(), bytes.len());

    // Over UPLOAD_MAX_BYTES (20 MiB): a problem, from nginx or the api.
    let (status, body) = upload_to(
        &nginx.url("/api/v1/files"),
        &token,
        file("huge.bin", vec![1u8; 21 * 1024 * 1024]),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    assert_eq!(app.get("/api/v1/files", &token).await.body["total"], 1);
}

#[tokio::test]
async fn bad_uploads_are_refused_whole_and_tenants_see_only_their_files() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let url = app.url("/api/v1/files");

    let res = app
        .client
        .post(&url)
        .bearer_auth(&token)
        .json(&serde_json::json!({"file": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (status, body) = upload_to(&url, &token, Form::new().text("other", "x")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "other");

    let (status, body) = upload_to(&url, &token, Form::new()).await;
    assert!(
        status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
        "{status} {body}"
    );

    let two =
        file("a.txt", b"a".to_vec()).part("file", Part::bytes(b"b".to_vec()).file_name("b.txt"));
    let (status, body) = upload_to(&url, &token, two).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        stored(&app),
        Vec::<String>::new(),
        "nothing of a refused request stays"
    );
    assert_eq!(app.get("/api/v1/files", &token).await.body["total"], 0);

    let (status, _) = upload_to(&url, "not-a-token", file("a.txt", b"a".to_vec())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, viewer) = app.create_user(&token, "files-viewer", &["viewer"]).await;
    let (status, _) = upload_to(&url, &viewer, file("a.txt", b"a".to_vec())).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "uploading needs devices:write"
    );

    let (status, body) = upload_to(&url, &token, file("mine.txt", b"mine".to_vec())).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = body["id"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/files", &viewer).await.body["total"], 1);
    let (_, other) = app.tenant_with_admin("files-other").await;
    assert_eq!(app.get("/api/v1/files", &other).await.body["total"], 0);
    for path in [
        format!("/api/v1/files/{id}"),
        format!("/api/v1/files/{id}/content"),
    ] {
        assert_eq!(app.get(&path, &other).await.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(
        app.delete(&format!("/api/v1/files/{id}"), &other)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get("/api/v1/files", &token).await.body["total"], 1);
}
