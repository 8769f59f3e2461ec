//! The observability profile's files: Prometheus' configuration and alert
//! rules checked (and the rules unit-tested) by the real `promtool` (Debian
//! package `prometheus`, installed by `deploy/local/install-test-deps.sh`), and the provisioned
//! Grafana dashboard. That every metric they name is really exported is
//! checked against the running stack in `local_stack.rs`.

use std::process::Command;

use ferro_deploy::{dashboard_expressions, metrics_in_promql, read, repo_root, rule_expressions};
use serde_json::Value;

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo_root().join("deploy/prometheus"))
        .output()
        .expect("promtool is installed (Debian package prometheus; deploy/local/install-test-deps.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn promtool_accepts_the_configuration_and_the_rules_pass_their_unit_tests() {
    let config = promtool(&["check", "config", "prometheus.yml"]);
    assert!(config.contains("SUCCESS"), "{config}");
    let rules = promtool(&["check", "rules", "alerts.yml"]);
    assert!(rules.contains("SUCCESS"), "{rules}");
    promtool(&["test", "rules", "alerts.test.yml"]);
}

#[test]
fn prometheus_scrapes_the_api_every_worker_and_the_scheduler() {
    let config = read("deploy/prometheus/prometheus.yml");
    assert!(config.contains("api:8001"));
    // Scaled workers: DNS service discovery finds every replica.
    let worker = &config[config.find("job_name: worker").expect("a worker job")..];
    assert!(worker.contains("dns_sd_configs") && worker.contains("9101"));
    assert!(config.contains("job_name: scheduler") && config.contains("9102"));
}

#[test]
fn the_alert_rules_cover_errors_queue_depth_and_dead_workers() {
    let rules = read("deploy/prometheus/alerts.yml");
    for alert in ["ApiHighErrorRate", "QueueBacklog", "WorkerDown"] {
        assert!(rules.contains(&format!("alert: {alert}")), "{alert}");
    }
    let used: std::collections::BTreeSet<String> = rule_expressions(&rules)
        .iter()
        .flat_map(|e| metrics_in_promql(e))
        .collect();
    for metric in ["http_requests_total", "broker_queue_depth"] {
        assert!(used.contains(metric), "{metric} in {used:?}");
    }
}

#[test]
fn the_grafana_dashboard_and_data_source_are_provisioned() {
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/dashboards/ferrostack.json"))
        .expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "ferrostack");
    let exprs = dashboard_expressions(&dashboard);
    let used: std::collections::BTreeSet<String> =
        exprs.iter().flat_map(|e| metrics_in_promql(e)).collect();
    for metric in [
        "http_requests_total",
        "http_request_duration_seconds",
        "worker_jobs_total",
        "broker_queue_depth",
    ] {
        assert!(used.contains(metric), "the dashboard shows {metric}");
    }
    let datasource = read("deploy/grafana/provisioning/datasources/prometheus.yml");
    assert!(datasource.contains("http://prometheus:9090"));
    assert!(datasource.contains("uid: prometheus"));
    let provider = read("deploy/grafana/provisioning/dashboards/ferrostack.yml");
    assert!(provider.contains("/var/lib/grafana/dashboards"));
    // Every panel query goes to the provisioned data source.
    fn datasources(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Object(m) => {
                if m.contains_key("expr")
                    && let Some(ds) = m.get("datasource")
                {
                    out.push(ds.clone());
                }
                m.values().for_each(|v| datasources(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| datasources(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    datasources(&dashboard, &mut found);
    assert_eq!(
        found.len(),
        exprs.len(),
        "every query names its data source"
    );
    assert!(
        found.iter().all(|ds| ds["uid"] == "prometheus"),
        "{found:?}"
    );
}
