//! The OpenAPI document is as exact as the server: schemathesis, a
//! property-based tester, generates requests from `/openapi.json` and sends
//! them to the real api as the platform administrator, with every check it
//! has (schema-valid requests accepted, invalid ones refused, every answer
//! documented and shaped as documented, authentication never ignored,
//! undeclared methods refused). Its settings, and the reason for each
//! operation it treats specially, are in `schemathesis.toml` beside this
//! file. The tester comes from PyPI: `deploy/local/install-test-deps.sh`
//! puts it in a virtualenv (or set `SCHEMATHESIS` to its `st`).

use std::path::{Path, PathBuf};

use crate::support::TestApp;

/// The tester's `st` command.
fn schemathesis() -> PathBuf {
    let path = std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/ferrostack-schemathesis/bin/st"));
    assert!(
        path.exists(),
        "schemathesis is not installed at {}: run deploy/local/install-test-deps.sh \
         (or set SCHEMATHESIS to its st command)",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_as_its_openapi_document_says() {
    let st = schemathesis();
    let app = TestApp::spawn_with(&[
        // The tester logs in with made-up credentials many times over.
        ("LOGIN_MAX_FAILURES_PER_USER", "1000000"),
        ("LOGIN_MAX_FAILURES_PER_IP", "1000000"),
    ])
    .await;
    let token = app.admin_token().await;
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/schemathesis.toml");
    // The tester keeps caches in its working folder: a folder of its own.
    let work = std::env::temp_dir().join(format!("ferro-st-{}", app.prefix.trim_matches(':')));
    std::fs::create_dir_all(&work).unwrap();
    let report = work.join("junit.xml");
    let out = tokio::process::Command::new(st)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(app.url("/openapi.json"))
        .arg("--report-junit-path")
        .arg(&report)
        .arg("--no-color")
        .env("ST_TOKEN", &token)
        .current_dir(&work)
        .kill_on_drop(true)
        .output()
        .await
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let junit = std::fs::read_to_string(&report).unwrap_or_default();
    // FERRO_ST_REPORT=path keeps the JUnit report (per operation: time, failures).
    if let Some(keep) = std::env::var_os("FERRO_ST_REPORT") {
        let _ = std::fs::copy(&report, keep);
    }
    let _ = std::fs::remove_dir_all(&work);
    assert!(
        out.status.success(),
        "schemathesis found problems (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    // Every operation the run selected was tested, and none failed or erred.
    assert!(junit.contains("<testcase"), "no report:\n{stdout}");
    assert!(
        !junit.contains("<failure") && !junit.contains("<error"),
        "{junit}\n{stdout}"
    );
    let count = |label: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.split(['/', ' ']).next()?.parse::<u32>().ok())
    };
    let selected = count("Selected: ");
    assert!(selected.is_some_and(|n| n > 40), "{stdout}");
    assert_eq!(selected, count("Tested: "), "{stdout}");
}
