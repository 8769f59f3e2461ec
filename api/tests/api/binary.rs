//! The real `api` binary: start, serve, exit 0 on SIGTERM; refuse bad
//! arguments and settings before anything starts.

use ferro_testkit::free_port;
use reqwest::StatusCode;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_binary_starts_serves_and_exits_zero_on_sigterm() {
    let db = ferro_testkit::TestDb::new().await;
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_api"))
        .envs(db.env_pairs())
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env(
            "REDIS_KEY_PREFIX",
            format!("test:{}:", uuid::Uuid::new_v4().simple()),
        )
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/health");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(res) = client.get(&url).send().await {
            assert_eq!(res.status(), StatusCode::OK);
            break;
        }
        assert!(Instant::now() < deadline, "api did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "api did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
    let mut logs = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut logs).unwrap();
    let first: Value = serde_json::from_str(logs.lines().next().unwrap()).expect("JSON log lines");
    assert_eq!(first["service"], "api");
    assert!(logs.contains("api stopped"));
}

#[tokio::test]
async fn a_port_in_use_stops_the_binary_with_a_clear_message() {
    let db = ferro_testkit::TestDb::new().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_api"))
        .envs(db.env_pairs())
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env(
            "REDIS_KEY_PREFIX",
            format!("test:{}:", uuid::Uuid::new_v4().simple()),
        )
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("the api kept running on a port in use")
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "could not listen on 127.0.0.1:{port} (HOST and PORT)"
        )),
        "{stderr}"
    );
    drop(taken);
}

#[test]
fn the_binary_refuses_to_start_in_production_without_a_jwt_secret() {
    let out = Command::new(env!("CARGO_BIN_EXE_api"))
        .env_clear()
        .env("APP_ENV", "production")
        .env("DATABASE_URL", "postgres://app:pw@127.0.0.1/db")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("JWT_SECRET is not set"), "{stderr}");
}

#[test]
fn unknown_arguments_start_nothing() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_api"))
            .args(args)
            // Nothing may be reached: the arguments are refused first.
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .output()
            .unwrap()
    };
    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("api healthcheck"));
    let bogus = run(&["servee"]);
    assert_eq!(bogus.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bogus.stderr).contains("unknown arguments: servee"));
}

#[test]
fn a_malformed_rust_log_stops_the_binary() {
    let out = Command::new(env!("CARGO_BIN_EXE_api"))
        .env("RUST_LOG", "[[[garbage")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RUST_LOG is invalid"));
}
