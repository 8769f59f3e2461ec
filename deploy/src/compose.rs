//! Driving the real `docker-compose.yml` with Docker: the compose test's
//! view of a project (its containers, their health, their addresses), with
//! the engine and the client of Debian's `docker.io` and `docker-compose`
//! packages (deploy/local/install-test-deps.sh installs them).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::repo_root;

/// The Docker client of Debian's docker.io (another client on the machine
/// wants buildx for BuildKit).
pub const DOCKER: &str = "/usr/bin/docker";

/// One compose project of the repository's `docker-compose.yml`, with the
/// variables it is run with.
pub struct Compose {
    pub project: String,
    env: Vec<(String, String)>,
}

impl Compose {
    pub fn new(project: &str, env: &[(&str, String)]) -> Self {
        Self {
            project: project.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    /// A variable of the project's environment.
    pub fn set(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// `docker-compose -p PROJECT args...` in the repository, as a user runs
    /// it (BuildKit on, for the Dockerfile's cache mounts).
    pub fn run(&self, args: &[&str]) -> Output {
        let path = format!("/usr/bin:{}", std::env::var("PATH").unwrap_or_default());
        Command::new("docker-compose")
            .arg("-p")
            .arg(&self.project)
            .args(args)
            .current_dir(repo_root())
            .env("PATH", path)
            .env("COMPOSE_DOCKER_CLI_BUILD", "1")
            .env("DOCKER_BUILDKIT", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("docker-compose runs (Debian package docker-compose)")
    }

    /// Like [`Compose::run`], panicking with its output unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker-compose {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The ids of the project's containers of `service` (running ones
    /// unless `all`).
    pub fn containers(&self, service: &str, all: bool) -> Vec<String> {
        let mut args = vec!["ps", "-q"];
        if all {
            args.push("-a");
        }
        let project = format!("label=com.docker.compose.project={}", self.project);
        let service = format!("label=com.docker.compose.service={service}");
        args.extend(["--filter", &project, "--filter", &service]);
        docker(&args).lines().map(str::to_owned).collect()
    }

    /// Every container, volume and network of the project that still exists.
    pub fn leftovers(&self) -> Vec<String> {
        let label = format!("label=com.docker.compose.project={}", self.project);
        let mut left = Vec::new();
        left.extend(
            docker(&["ps", "-aq", "--filter", &label])
                .lines()
                .map(|c| format!("container {c}")),
        );
        left.extend(
            docker(&["volume", "ls", "-q", "--filter", &label])
                .lines()
                .map(|v| format!("volume {v}")),
        );
        left.extend(
            docker(&["network", "ls", "-q", "--filter", &label])
                .lines()
                .map(|n| format!("network {n}")),
        );
        left
    }

    /// Waits until every container of each of `services` is healthy (and
    /// there are `count` of them where one is given), failing after `limit`
    /// with what each one's state was.
    pub fn wait_healthy(&self, services: &[(&str, usize)], limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let mut waiting = Vec::new();
            for (service, count) in services {
                let ids = self.containers(service, false);
                if ids.len() != *count {
                    waiting.push(format!("{service}: {} of {count} running", ids.len()));
                }
                for id in ids {
                    let health = inspect(
                        &id,
                        "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
                    );
                    if health != "healthy" {
                        waiting.push(format!("{service} {id}: {health}"));
                    }
                }
            }
            if waiting.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not healthy after {limit:?}: {waiting:?}\n{}",
                self.logs_tail()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The exit code of the (stopped) container of a one-shot `service`.
    pub fn exit_code(&self, service: &str) -> Option<i64> {
        let id = self.containers(service, true).into_iter().next()?;
        let running = inspect(&id, "{{.State.Running}}");
        (running == "false").then(|| inspect(&id, "{{.State.ExitCode}}").parse().ok())?
    }

    /// The last lines each container of the project logged, for failures.
    pub fn logs_tail(&self) -> String {
        String::from_utf8_lossy(&self.run(&["logs", "--tail", "15", "--no-color"]).stdout)
            .into_owned()
    }
}

/// `docker args...`; its standard output (panics on failure).
pub fn docker(args: &[&str]) -> String {
    let out = Command::new(DOCKER)
        .args(args)
        .output()
        .expect("the docker client of Debian's docker.io runs");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// One field of `docker inspect` (a Go template).
pub fn inspect(id: &str, template: &str) -> String {
    docker(&["inspect", "--format", template, id])
}

/// The container's address on the compose network.
pub fn address(id: &str) -> String {
    inspect(
        id,
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    )
}

/// Whether a Docker engine answers this client.
pub fn engine_available() -> bool {
    Command::new(DOCKER)
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The stand-in images' build script (deploy/standins).
pub fn standins_script() -> PathBuf {
    repo_root().join("deploy/standins/build.sh")
}
