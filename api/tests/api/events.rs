//! Job events end to end: the api, a worker (in-process), the broker
//! (RabbitMQ, and Redis Streams where named), Redis pub/sub, and a client reading Server-Sent Events.

use crate::support;
use crate::support::TestApp;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn start_worker(app: &TestApp) -> CancellationToken {
    support::start_worker(app, app.db.app().await, "events-test", 2)
}

/// Reads the whole event stream (it ends when the job ends): (event, id, data) triples.
async fn read_events(
    app: &TestApp,
    token: &str,
    job: &str,
) -> (reqwest::header::HeaderMap, Vec<(String, String, Value)>) {
    let res = app
        .client
        .get(app.url(&format!("/api/v1/jobs/events/{job}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let headers = res.headers().clone();
    let mut body = String::new();
    let mut stream = res.bytes_stream();
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(chunk) = stream.next().await {
            body.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    })
    .await;
    assert!(read.is_ok(), "the stream did not end; got:\n{body}");
    let mut events = Vec::new();
    for block in body.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_owned();
            }
            if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().to_owned();
            }
            if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim());
            }
        }
        if !data.is_empty() {
            events.push((event, id, serde_json::from_str(&data).unwrap()));
        }
    }
    (headers, events)
}

#[tokio::test]
async fn a_client_watches_a_job_from_queued_to_succeeded() {
    watch_a_noop_job(TestApp::spawn().await).await;
}

#[tokio::test]
async fn a_client_watches_a_job_from_queued_to_succeeded_on_redis_streams() {
    watch_a_noop_job(TestApp::spawn_with(&[("BROKER_URL", support::REDIS_BROKER)]).await).await;
}

async fn watch_a_noop_job(app: TestApp) {
    let stop = start_worker(&app).await;
    let token = app.admin_token().await;
    let job = app
        .post(
            "/api/v1/jobs",
            &token,
            json!({"kind": "noop", "params": {"sleep_ms": 600}}),
        )
        .await
        .body;
    let id = job["id"].as_str().unwrap();
    let (headers, events) = read_events(&app, &token, id).await;
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let statuses: Vec<&str> = events
        .iter()
        .map(|(_, _, d)| d["status"].as_str().unwrap())
        .collect();
    assert!(["queued", "running"].contains(&statuses[0]), "{statuses:?}");
    assert_eq!(*statuses.last().unwrap(), "succeeded", "{statuses:?}");
    assert!(
        events
            .iter()
            .any(|(e, _, d)| e == "progress" && d["progress"].as_i64().unwrap() > 0),
        "{events:?}"
    );
    let ids: Vec<u64> = events
        .iter()
        .map(|(_, id, _)| id.parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    assert!(events.iter().all(|(_, _, d)| d["job_id"] == id));
    // A finished job's stream is its final state and nothing more.
    let (_, again) = read_events(&app, &token, id).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].2["status"], "succeeded");
    // EventSource reconnects when a stream ends, with the last id it saw:
    // for an ended job that is a 204, which stops it.
    let reconnect = app
        .client
        .get(app.url(&format!("/api/v1/jobs/events/{id}")))
        .bearer_auth(&token)
        .header("last-event-id", ids.last().unwrap().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(reconnect.status(), StatusCode::NO_CONTENT);
    stop.cancel();
}

/// An api whose broker is unreachable, with no worker: a submitted job stays
/// `queued`. Returns the app, an admin token and the job's id.
async fn app_with_a_waiting_job() -> (TestApp, String, String) {
    let app = TestApp::spawn_with(&[("BROKER_URL", "amqp://guest:guest@127.0.0.1:1/%2f")]).await;
    let token = app.admin_token().await;
    let job = app
        .post("/api/v1/jobs", &token, json!({"kind": "noop"}))
        .await
        .body;
    let id = job["id"].as_str().unwrap().to_owned();
    (app, token, id)
}

#[tokio::test]
async fn a_cancelled_queued_job_ends_its_stream() {
    let (app, token, id) = app_with_a_waiting_job().await;
    let reader = {
        let (client, url, token) = (
            app.client.clone(),
            app.url(&format!("/api/v1/jobs/events/{id}")),
            token.clone(),
        );
        tokio::spawn(async move {
            let res = client.get(url).bearer_auth(token).send().await.unwrap();
            tokio::time::timeout(Duration::from_secs(10), res.text())
                .await
                .expect("stream ended")
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.request(
        Method::POST,
        &format!("/api/v1/jobs/{id}/cancel"),
        Some(&token),
        None,
    )
    .await;
    let body = reader.await.unwrap();
    assert!(body.contains("\"status\":\"queued\""), "{body}");
    assert!(body.contains("\"status\":\"cancelled\""), "{body}");
}

/// Opens the job's event stream and reads it to its end (at most 12 s) on a
/// task of its own; the task answers how long the stream stayed open and
/// what it carried.
async fn read_stream_to_end(
    app: &TestApp,
    token: &str,
    id: &str,
) -> tokio::task::JoinHandle<(Duration, String)> {
    let res = app
        .client
        .get(app.url(&format!("/api/v1/jobs/events/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let body = tokio::time::timeout(Duration::from_secs(12), res.text())
            .await
            .expect("the stream stayed open")
            .unwrap();
        (started.elapsed(), body)
    })
}

#[tokio::test]
async fn a_logout_ends_the_event_stream_of_a_job_still_waiting() {
    // The job stays queued, so only the session can end the stream.
    let (app, token, id) = app_with_a_waiting_job().await;
    let reader = read_stream_to_end(&app, &token, &id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = app
        .request(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let (elapsed, body) = reader.await.unwrap();
    assert!(body.contains("\"status\":\"queued\""), "{body}");
    assert!(
        elapsed < Duration::from_secs(7),
        "ended {elapsed:?} after it started"
    );
}

#[tokio::test]
async fn losing_jobs_read_ends_the_event_stream() {
    let (app, admin, id) = app_with_a_waiting_job().await;
    let (viewer_id, viewer) = app.create_user(&admin, "vic", &["viewer"]).await;
    let reader = read_stream_to_end(&app, &viewer, &id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let demoted = app
        .request(
            Method::PUT,
            &format!("/api/v1/users/{viewer_id}/roles"),
            Some(&admin),
            Some(json!({"roles": []})),
        )
        .await;
    assert_eq!(demoted.status, StatusCode::OK, "{}", demoted.body);
    let (elapsed, _) = reader.await.unwrap();
    assert!(
        elapsed < Duration::from_secs(7),
        "ended {elapsed:?} after it started"
    );
}

#[tokio::test]
async fn streams_are_tenant_scoped_and_can_be_disabled() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let job = app
        .post("/api/v1/jobs", &token, json!({"kind": "noop"}))
        .await
        .body;
    let id = job["id"].as_str().unwrap();
    let (_, acme) = app.tenant_with_admin("acme").await;
    assert_eq!(
        app.get(&format!("/api/v1/jobs/events/{id}"), &acme)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let off = TestApp::spawn_with(&[("ENABLE_SSE", "false")]).await;
    let token = off.admin_token().await;
    let job = off
        .post("/api/v1/jobs", &token, json!({"kind": "noop"}))
        .await
        .body;
    let reply = off
        .get(
            &format!("/api/v1/jobs/events/{}", job["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
}

#[tokio::test]
async fn an_snmp_get_against_a_real_agent_is_watched_to_success_over_sse() {
    snmp_get_watched_over_sse(TestApp::spawn().await).await;
}

#[tokio::test]
async fn an_snmp_get_against_a_real_agent_is_watched_to_success_over_sse_on_redis_streams() {
    snmp_get_watched_over_sse(TestApp::spawn_with(&[("BROKER_URL", support::REDIS_BROKER)]).await)
        .await;
}

/// The Done-when path of the jobs issue, on the app's broker.
async fn snmp_get_watched_over_sse(app: TestApp) {
    let agent = ferro_testkit::SnmpAgent::start();
    let stop = start_worker(&app).await;
    let token = app.admin_token().await;
    let device = app
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": "lab-agent", "protocol": "snmp", "host": "127.0.0.1", "port": agent.port,
                   "snmp": {"version": "v2c", "community": ferro_testkit::SnmpAgent::COMMUNITY}}),
        )
        .await
        .body;
    let job = app
        .post("/api/v1/jobs", &token, json!({"kind": "snmp.get", "device_id": device["id"], "params": {"oids": ["1.3.6.1.2.1.1.1.0"]}}))
        .await;
    assert_eq!(job.status, StatusCode::ACCEPTED, "{}", job.body);
    let id = job.body["id"].as_str().unwrap();
    let (_, events) = read_events(&app, &token, id).await;
    assert_eq!(
        events.last().unwrap().2["status"],
        "succeeded",
        "{events:?}"
    );
    let results = app
        .get(&format!("/api/v1/jobs/{id}/results"), &token)
        .await
        .body;
    assert_eq!(
        results["items"][0]["data"]["values"][0]["value"],
        "Ferrostack test agent"
    );
    stop.cancel();
}

#[tokio::test]
async fn the_websocket_streams_the_tenants_events_until_logout() {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app = TestApp::spawn_with(&[("BROKER_URL", "amqp://guest:guest@127.0.0.1:1/%2f")]).await;
    let token = app.admin_token().await;
    let mut request = format!("ws://{}/api/v1/jobs/ws", app.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");

    let job = app
        .post("/api/v1/jobs", &token, json!({"kind": "noop"}))
        .await
        .body;
    let id = job["id"].as_str().unwrap();
    app.request(
        Method::POST,
        &format!("/api/v1/jobs/{id}/cancel"),
        Some(&token),
        None,
    )
    .await;
    let event = loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("an event")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = msg {
            break serde_json::from_str::<Value>(&text).unwrap();
        }
    };
    assert_eq!(
        (event["job_id"].as_str(), event["status"].as_str()),
        (Some(id), Some("cancelled"))
    );

    // A logout closes the socket (the session is re-checked every 5 s).
    app.request(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    let closed = tokio::time::timeout(Duration::from_secs(12), async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Close(_) = msg {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the socket stayed open after logout");

    // Without a token there is no upgrade.
    let anonymous = format!("ws://{}/api/v1/jobs/ws", app.addr)
        .into_client_request()
        .unwrap();
    assert!(tokio_tungstenite::connect_async(anonymous).await.is_err());
}

#[tokio::test]
async fn a_browser_authenticates_the_websocket_with_the_bearer_subprotocol() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app = TestApp::spawn_with(&[("BROKER_URL", "amqp://guest:guest@127.0.0.1:1/%2f")]).await;
    let token = app.admin_token().await;
    let connect = |protocols: String| {
        let mut request = format!("ws://{}/api/v1/jobs/ws", app.addr)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocols.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    // What `new WebSocket(url, ["bearer", token])` sends; the server picks `bearer`.
    let (_ws, response) = connect(format!("bearer, {token}")).await.expect("upgrade");
    assert_eq!(response.headers()["sec-websocket-protocol"], "bearer");
    // A token that is not valid, or no token after `bearer`, gets no upgrade.
    assert!(connect("bearer, not-a-token".to_owned()).await.is_err());
    assert!(connect("bearer".to_owned()).await.is_err());
    // The token is not taken from a plain request's subprotocol header.
    let plain = app
        .client
        .get(app.url("/api/v1/jobs"))
        .header("sec-websocket-protocol", format!("bearer, {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_devices_export_is_downloaded_as_csv() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let device = app
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": "core-1", "protocol": "http", "host": "10.0.0.1", "port": 80}),
        )
        .await;
    assert_eq!(device.status, StatusCode::CREATED, "{}", device.body);
    let job = app
        .post("/api/v1/jobs", &token, json!({"kind": "devices.export"}))
        .await
        .body;
    let id = job["id"].as_str().unwrap();
    let download = |id: String| {
        let (app, token) = (&app, token.clone());
        async move {
            app.client
                .get(app.url(&format!("/api/v1/jobs/{id}/download")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    // No worker yet: the job is queued and has no file.
    let early = download(id.to_owned()).await;
    assert_eq!(early.status(), StatusCode::CONFLICT);
    assert_eq!(early.headers()["content-type"], "application/problem+json");

    let stop = start_worker(&app).await;
    let (_, events) = read_events(&app, &token, id).await;
    assert_eq!(events.last().unwrap().2["status"], "succeeded");
    let file = download(id.to_owned()).await;
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(file.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        file.headers()["content-disposition"],
        format!("attachment; filename=\"devices-export-{id}.csv\"").as_str()
    );
    let csv = file.text().await.unwrap();
    assert!(
        csv.starts_with("id,name,protocol,host,port,tags,status\n"),
        "{csv}"
    );
    assert!(csv.contains(",core-1,http,10.0.0.1,80,"), "{csv}");

    // A kind that makes no file, and a job that does not exist.
    let noop = app
        .post("/api/v1/jobs", &token, json!({"kind": "noop"}))
        .await
        .body;
    let noop_id = noop["id"].as_str().unwrap();
    read_events(&app, &token, noop_id).await;
    assert_eq!(
        download(noop_id.to_owned()).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        download(uuid::Uuid::new_v4().to_string()).await.status(),
        StatusCode::NOT_FOUND
    );
    stop.cancel();
}

/// At shutdown an open event stream ends at once (the client reconnects to
/// another instance) instead of holding the shutdown for its whole grace.
#[tokio::test]
async fn a_shutdown_ends_the_event_streams_at_once() {
    let (app, token, id) = app_with_a_waiting_job().await;
    let reader = read_stream_to_end(&app, &token, &id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    app.stop().await;
    let stopped = started.elapsed();
    let (_, body) = reader.await.unwrap();
    assert!(body.contains("\"status\":\"queued\""), "{body}");
    assert!(
        stopped < Duration::from_secs(3),
        "shutdown took {stopped:?}"
    );
}
