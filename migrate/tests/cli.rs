//! The `migrate` binary as compose and operators run it.

use std::process::Command;

use ferro_testkit::TestDb;

fn migrate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_migrate"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .current_dir(std::env::temp_dir());
    cmd
}

#[test]
fn up_twice_exits_zero_and_status_lists_everything_applied() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::new());
    for _ in 0..2 {
        let out = migrate().envs(db.env_pairs()).arg("up").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = migrate()
        .envs(db.env_pairs())
        .arg("status")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("0 pending"), "{stdout}");
    let applied = stdout.lines().filter(|l| l.ends_with(" applied")).count();
    assert_eq!(applied, ferro_schema::MIGRATOR.iter().count(), "{stdout}");
    drop(db);
}

#[test]
fn missing_or_malformed_variables_stop_with_one_line_naming_them() {
    let out = migrate().arg("up").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let line = stderr.lines().last().unwrap();
    assert!(
        line.contains("DATABASE_URL is not set; expected a postgres:// URL"),
        "{stderr}"
    );

    let out = migrate()
        .env("DATABASE_URL", "postgres://app:pw@127.0.0.1/db")
        .env("APP_ENV", "production")
        .arg("up")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("ADMIN_PASSWORD is not set"), "{stderr}");
    assert!(
        !stderr.contains("pw@"),
        "the URL's password leaked: {stderr}"
    );
}

#[test]
fn unreachable_database_gives_up_after_the_wait_with_a_clear_message() {
    let started = std::time::Instant::now();
    let out = migrate()
        .env("DATABASE_URL", "postgres://app:secretpw@127.0.0.1:1/db")
        .env("MIGRATE_WAIT_SECONDS", "2")
        .arg("up")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("could not use PostgreSQL at postgres://app:***@127.0.0.1:1/db"),
        "{stderr}"
    );
    // With the cause, not only "database unavailable".
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(!stderr.contains("secretpw"));
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}

#[test]
fn reset_needs_confirmation() {
    let out = migrate()
        .env("DATABASE_URL", "postgres://app:pw@127.0.0.1:1/db")
        .args(["reset"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
}

/// Replicas that each run `migrate up` before they start do so at the same
/// moment: all of them succeed, on a database (and role) none of them found.
#[test]
fn several_ups_at_once_all_succeed() {
    let db = TestDb::unmigrated();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            migrate()
                .envs(db.env_pairs())
                .arg("up")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(db);
}
