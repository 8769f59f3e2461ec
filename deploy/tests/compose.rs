//! docker-compose.yml, checked statically (no Docker engine runs here):
//! against the Compose Specification's JSON schema in
//! `../shared/schemas/compose-spec.json`, and against the topology the
//! contract promises. Also the Dockerfile and `.env.example`.

use std::collections::BTreeSet;

use ferro_deploy::{
    compose_variables, documented_variables, read, repo_root, variables_read_by_services,
};
use serde_json::Value;

/// docker-compose.yml as JSON, with YAML anchors and `<<` merges resolved
/// as Compose resolves them.
fn compose() -> Value {
    let mut yaml: serde_norway::Value =
        serde_norway::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML");
    // A merged mapping may itself merge another (x-app merges x-base):
    // resolved until no merge key is left, as Compose does.
    for _ in 0..4 {
        yaml.apply_merge().expect("merge keys resolve");
    }
    let json = serde_json::to_value(yaml).expect("compose YAML maps to JSON");
    assert!(!json.to_string().contains("\"<<\""), "every merge resolved");
    json
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let s = &compose["services"][name];
    assert!(s.is_object(), "service {name} exists");
    s
}

#[test]
fn the_compose_file_is_valid_against_the_compose_schema() {
    let schema_path = repo_root().join("../shared/schemas/compose-spec.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&schema_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (../shared beside the clone)",
                schema_path.display()
            )
        }))
        .expect("the schema is JSON");
    let validator = jsonschema::draft7::new(&schema).expect("the schema compiles");
    let doc = compose();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "schema violations:\n{}",
        errors.join("\n")
    );

    // The check can fail: a misspelt key is refused.
    let mut broken = doc.clone();
    broken["services"]["api"]["healthcheck"]["intervall"] = Value::from("5s");
    assert!(
        !validator.is_valid(&broken),
        "the schema refuses unknown keys"
    );
}

#[test]
fn the_topology_is_the_contracts() {
    let doc = compose();
    let services: BTreeSet<&str> = doc["services"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for name in [
        "nginx",
        "api",
        "worker",
        "scheduler",
        "migrate",
        "postgres",
        "redis",
        "rabbitmq",
        "prometheus",
        "grafana",
    ] {
        assert!(services.contains(name), "service {name}");
    }

    let ports = service(&doc, "nginx")["ports"].as_array().unwrap();
    assert!(
        ports.iter().any(|p| p
            .as_str()
            .is_some_and(|p| p.ends_with(":8000") && p.contains("8000"))),
        "nginx is published on host port 8000: {ports:?}"
    );
    assert!(
        service(&doc, "worker").get("container_name").is_none(),
        "worker scales with --scale"
    );
    for name in ["api", "worker", "scheduler"] {
        let after = &service(&doc, name)["depends_on"]["migrate"]["condition"];
        assert_eq!(
            after, "service_completed_successfully",
            "{name} waits for migrate"
        );
        let command = service(&doc, name)["command"][0].as_str().unwrap();
        assert_eq!(command, name, "{name} runs its own binary");
    }
    assert_eq!(
        service(&doc, "migrate")["command"],
        serde_json::json!(["migrate", "up"])
    );
    assert_eq!(service(&doc, "migrate")["restart"], "no");

    // Every long-running service has a health check; ours use their binaries.
    for name in services.iter().filter(|n| **n != "migrate") {
        let check = &service(&doc, name)["healthcheck"]["test"];
        assert!(check.is_array(), "{name} has a health check");
        let words: Vec<&str> = check
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(!words.contains(&"curl"), "{name}: no curl in the images");
        assert!(
            service(&doc, name).get("restart").is_some(),
            "{name} has a restart policy"
        );
    }
    assert_eq!(
        service(&doc, "api")["healthcheck"]["test"],
        serde_json::json!(["CMD", "api", "healthcheck"])
    );
    assert_eq!(
        service(&doc, "worker")["healthcheck"]["test"],
        serde_json::json!(["CMD", "worker", "ping"])
    );
    assert_eq!(
        service(&doc, "scheduler")["healthcheck"]["test"],
        serde_json::json!(["CMD", "scheduler", "ping"])
    );

    assert_eq!(service(&doc, "postgres")["image"], "postgres:16");
    let redis = service(&doc, "redis");
    assert!(redis["image"].as_str().unwrap().starts_with("redis:7"));
    let redis_flag = |flag: &str, value: &str| {
        redis["command"]
            .as_array()
            .unwrap()
            .windows(2)
            .any(|w| w[0] == flag && w[1] == value)
    };
    assert!(
        redis_flag("--appendonly", "yes"),
        "redis persists with an append-only file"
    );
    assert!(
        redis_flag("--appendfsync", "always"),
        "an acknowledged XADD of a job survives a crash of redis"
    );
    assert!(
        service(&doc, "rabbitmq")["image"]
            .as_str()
            .unwrap()
            .contains("management")
    );
    for name in ["prometheus", "grafana"] {
        assert_eq!(
            service(&doc, name)["profiles"],
            serde_json::json!(["observability"]),
            "{name} is behind the observability profile"
        );
    }
    for name in services
        .iter()
        .filter(|n| !["prometheus", "grafana"].contains(n))
    {
        assert!(
            service(&doc, name).get("profiles").is_none(),
            "{name} runs by default"
        );
    }

    // One network; named volumes for every stateful service.
    assert_eq!(doc["networks"].as_object().unwrap().len(), 1);
    for volume in [
        "postgres-data",
        "redis-data",
        "rabbitmq-data",
        "prometheus-data",
        "grafana-data",
    ] {
        assert!(doc["volumes"].get(volume).is_some(), "volume {volume}");
    }

    // The api believes X-Forwarded-For only from nginx's fixed address.
    let nginx_ip = service(&doc, "nginx")["networks"]["backend"]["ipv4_address"]
        .as_str()
        .unwrap();
    assert_eq!(
        service(&doc, "api")["environment"]["TRUSTED_PROXIES"],
        nginx_ip
    );
    assert_eq!(nginx_ip, "172.28.0.10", "outside the automatic range");
    // Files the compose file mounts exist.
    for (name, mounts) in doc["services"].as_object().unwrap() {
        for mount in mounts["volumes"].as_array().into_iter().flatten() {
            let source = mount.as_str().unwrap().split(':').next().unwrap();
            if let Some(relative) = source.strip_prefix("./") {
                assert!(
                    repo_root().join(relative).exists(),
                    "{name} mounts {source}, which is missing"
                );
            }
        }
    }
}

#[test]
fn the_dockerfile_builds_every_binary_into_a_small_non_root_image() {
    let dockerfile = read("deploy/Dockerfile");
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(stages.len() >= 3, "multi-stage: {stages:?}");
    assert!(
        stages.last().unwrap().contains("-slim"),
        "a slim runtime image"
    );
    assert!(
        dockerfile.contains("cargo chef cook"),
        "a cached dependency layer"
    );
    for bin in ["api", "worker", "scheduler", "migrate"] {
        assert!(
            dockerfile.contains(&format!("--bin {bin}")),
            "the image has {bin}"
        );
    }
    let runtime = &dockerfile[dockerfile.rfind("\nFROM ").unwrap()..];
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets a USER");
    assert!(!user.starts_with("root") && !user.starts_with('0'));
    assert!(runtime.contains("HEALTHCHECK"));
    assert!(
        !runtime
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("curl")),
        "no curl in the runtime image"
    );
    // Files the Dockerfile copies exist, and the context keeps out secrets.
    assert!(repo_root().join("deploy/schedules.json").exists());
    let ignore = read(".dockerignore");
    for entry in ["target/", ".git/", ".env"] {
        assert!(
            ignore.lines().any(|l| l == entry),
            ".dockerignore has {entry}"
        );
    }
}

#[test]
fn env_example_documents_every_variable() {
    let documented = documented_variables(&read(".env.example"));
    let read_by_code = variables_read_by_services();
    assert!(
        read_by_code.len() > 30,
        "the scan finds the services' variables: {read_by_code:?}"
    );
    let missing: Vec<_> = read_by_code.difference(&documented).collect();
    assert!(missing.is_empty(), ".env.example lacks {missing:?}");

    let interpolated = compose_variables(&read("docker-compose.yml"));
    let missing: Vec<_> = interpolated.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        ".env.example lacks the compose variables {missing:?}"
    );
    let up = read("deploy/local/up.sh");
    for knob in [
        "NGINX_PORT",
        "WORKER_METRICS_ADDR",
        "SCHEDULER_METRICS_ADDR",
    ] {
        assert!(up.contains(knob) && documented.contains(knob), "{knob}");
    }
}
