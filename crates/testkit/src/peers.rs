//! Real services a test starts for itself: an SNMP agent (snmpd), an SMTP
//! server (aiosmtpd), and a redis-server or RabbitMQ node of its own for the
//! tests that kill and restart one.

use std::time::{Duration, Instant};
use uuid::Uuid;

/// A real net-snmp agent on a free loopback UDP port, stopped on drop.
pub struct SnmpAgent {
    pub port: u16,
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl SnmpAgent {
    pub const COMMUNITY: &'static str = "ferro-test";

    /// Starts `snmpd` (Debian package snmpd) with its own config and waits
    /// until it answers (probed with `snmpget`, Debian package snmp).
    pub fn start() -> Self {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("ferro-snmpd-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("snmpd.conf");
        std::fs::write(
            &conf,
            format!(
                "rocommunity {} 127.0.0.1\nsysDescr Ferrostack test agent\nsysLocation test-lab\n",
                Self::COMMUNITY
            ),
        )
        .unwrap();
        let child = std::process::Command::new("snmpd")
            .args(["-f", "-Lf"])
            .arg(dir.join("log"))
            .args(["-C", "-c"])
            .arg(&conf)
            .arg("-p")
            .arg(dir.join("pid"))
            .arg(format!("udp:127.0.0.1:{port}"))
            .env("SNMP_PERSISTENT_DIR", &dir)
            .env("MIBS", "")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("snmpd (Debian package snmpd) is installed");
        let agent = SnmpAgent { port, child, dir };
        // Ready when the agent answers.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let probe = std::process::Command::new("snmpget")
                .args([
                    "-v2c",
                    "-c",
                    Self::COMMUNITY,
                    "-t",
                    "0.3",
                    "-r",
                    "0",
                    &format!("127.0.0.1:{port}"),
                    "1.3.6.1.2.1.1.1.0",
                ])
                .output()
                .expect("snmpget (Debian package snmp) is installed");
            if probe.status.success() {
                return agent;
            }
            assert!(std::time::Instant::now() < deadline, "snmpd did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for SnmpAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A real SMTP server (aiosmtpd, Debian package python3-aiosmtpd) on a free
/// loopback port, storing what it receives in a Maildir; stopped on drop.
pub struct SmtpSink {
    pub port: u16,
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl SmtpSink {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("ferro-smtp-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = std::process::Command::new("/usr/bin/python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(dir.join("maildir"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd is installed");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "aiosmtpd did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        SmtpSink { port, child, dir }
    }

    /// Every message received so far, as raw text.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.dir.join("maildir").join(sub)) {
                for entry in entries.flatten() {
                    out.push(std::fs::read_to_string(entry.path()).unwrap_or_default());
                }
            }
        }
        out
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A redis-server of the test's own, keeping its data in an append-only file.
pub struct RedisServer {
    dir: std::path::PathBuf,
    pub port: u16,
    child: std::process::Child,
}

impl RedisServer {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("ferro-redis-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Self::spawn(&dir, port);
        Self { dir, port, child }
    }

    fn spawn(dir: &std::path::Path, port: u16) -> std::process::Child {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (as a crash would), waits `down_for`, starts it again on
    /// the same port and data directory.
    pub fn restart(&mut self, down_for: Duration) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(down_for);
        self.child = Self::spawn(&self.dir, self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A RabbitMQ node of the test's own (Debian package rabbitmq-server), on
/// its own AMQP port, node name and data directory, so it can be killed and
/// started again without disturbing the tests that share the machine's node.
pub struct RabbitMqNode {
    dir: std::path::PathBuf,
    pub port: u16,
    dist_port: u16,
    name: String,
    child: std::process::Child,
}

impl RabbitMqNode {
    pub fn start() -> Self {
        let id = &Uuid::new_v4().simple().to_string()[..12];
        let dir = std::env::temp_dir().join(format!("ferro-rabbitmq-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let (port, dist_port) = (free_port(), free_port());
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )
        .unwrap();
        // No plugins (the management plugin would want the machine node's
        // port 15672), and no machine-wide rabbitmq-env.conf.
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        let name = format!("ferro-test-{id}@localhost");
        std::fs::write(dir.join("rabbitmq-env.conf"), format!("NODENAME={name}\n")).unwrap();
        let child = Self::spawn(&dir, &name, port, dist_port);
        Self {
            dir,
            port,
            dist_port,
            name,
            child,
        }
    }

    fn spawn(dir: &std::path::Path, name: &str, port: u16, dist_port: u16) -> std::process::Child {
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        // RUNNING_UNDER_SYSTEMD makes the script Debian ships exec the
        // Erlang VM instead of running it as a child, so this child is the
        // node itself and killing it is a crash of the broker.
        let mut child = std::process::Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .env("RUNNING_UNDER_SYSTEMD", "true")
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
            .env("RABBITMQ_NODENAME", name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("rabbitmq-server (Debian package rabbitmq-server) runs");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "rabbitmq-server exited with {status}: {}",
                    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "rabbitmq-server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        child
    }

    /// `BROKER_URL` for this node.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Kills the node (as a crash would), waits `down_for`, starts it again
    /// on the same port and data directory.
    pub fn restart(&mut self, down_for: Duration) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(down_for);
        self.child = Self::spawn(&self.dir, &self.name, self.port, self.dist_port);
    }
}

impl Drop for RabbitMqNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP port on loopback that was free a moment ago, for a server under
/// test (a port-0 bind is better where the server takes a listener).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}
