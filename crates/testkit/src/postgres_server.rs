//! A PostgreSQL server of the test's own (Debian's postgresql package):
//! its own cluster, port and data directory, so a test can kill it as a
//! crash would and start it again without disturbing the tests that share
//! the machine's server.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::peers::free_port;

pub struct PostgresServer {
    dir: PathBuf,
    pub port: u16,
    child: Child,
}

/// The newest server installed (`/usr/lib/postgresql/<version>/bin`).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Debian's postgresql package (/usr/lib/postgresql)")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    let version = versions.last().expect("a PostgreSQL version installed");
    PathBuf::from(format!("/usr/lib/postgresql/{version}/bin"))
}

/// The user and group the server runs as: `postgres` when the tests run as
/// root (PostgreSQL refuses to run as root), else the tests' own.
fn server_user() -> Option<(u32, u32)> {
    let me = std::fs::metadata("/proc/self").expect("/proc/self").uid();
    if me != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("a postgres user (Debian's postgresql package makes it)");
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields[2].parse().unwrap(), fields[3].parse().unwrap()))
}

fn as_server_user(mut command: Command) -> Command {
    if let Some((uid, gid)) = server_user() {
        command.uid(uid).gid(gid);
    }
    command
}

impl PostgresServer {
    /// initdb, then the server on a free loopback port (trust
    /// authentication, fsync on: what committed survives a kill).
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("ferro-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        if let Some((uid, gid)) = server_user() {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let out = as_server_user(Command::new(bin_dir().join("initdb")))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .arg("-D")
            .arg(dir.join("data"))
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let child = Self::spawn(&dir, port);
        Self { dir, port, child }
    }

    fn spawn(dir: &Path, port: u16) -> Child {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = std::fs::File::create(dir.join("server.log")).unwrap();
            let mut child = as_server_user(Command::new(bin_dir().join("postgres")))
                .arg("-D")
                .arg(dir.join("data"))
                .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
                .arg("-c")
                .arg(format!("unix_socket_directories={}", dir.display()))
                .args(["-c", "max_connections=200"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("postgres runs");
            // Up when it takes a query; after a kill, the old backends may
            // still hold the shared memory a moment, and the new server
            // exits: then it is started again.
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                let ready = Command::new(bin_dir().join("pg_isready"))
                    .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
                    .status()
                    .is_ok_and(|s| s.success());
                if ready {
                    return child;
                }
                assert!(
                    Instant::now() < deadline,
                    "postgres did not start: {}",
                    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            assert!(
                Instant::now() < deadline,
                "postgres kept exiting: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The superuser's URL (for [`crate::TestDb::on_server`]).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Kills the server with SIGKILL (a crash: it recovers from its WAL
    /// when started), waits `down_for`, starts it again on the same port
    /// and data directory.
    pub fn restart(&mut self, down_for: Duration) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(down_for);
        self.child = Self::spawn(&self.dir, self.port);
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
