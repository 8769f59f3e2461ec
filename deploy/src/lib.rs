//! Helpers for the deployment checks in `deploy/tests/`: where the
//! repository is, which variables the services read, and which metrics the
//! Prometheus rules and the Grafana dashboard use.

pub mod compose;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The repository's root (this crate lives in `deploy/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("deploy/ has a parent")
        .to_path_buf()
}

/// Reads a file of the repository, relative to its root.
pub fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The environment variables the services' code reads through
/// `ferro_config::Env` (`raw`, `required`, `required_str`, `parse_or`,
/// `bool_or`), from every `src/` of the services and library crates.
pub fn variables_read_by_services() -> BTreeSet<String> {
    let root = repo_root();
    let mut files = Vec::new();
    for dir in ["api", "worker", "scheduler", "migrate", "crates"] {
        rust_sources(&root.join(dir), &mut files);
    }
    let mut names = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        names.extend(env_calls(&without_test_modules(&text)));
    }
    names
}

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            // Tests and the test kit set variables, they do not define them.
            if name != "tests" && name != "testkit" && name != "target" {
                rust_sources(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `text` without its `#[cfg(test)] mod ... { ... }` blocks (unit tests make
/// up variables of their own).
pub fn without_test_modules(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find('{') else {
            rest = "";
            break;
        };
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The `"NAME"` arguments of `Env` lookups in `text` (arguments may start
/// on the next line).
pub fn env_calls(text: &str) -> BTreeSet<String> {
    const METHODS: [&str; 5] = [
        ".raw(",
        ".required(",
        ".required_str(",
        ".parse_or(",
        ".bool_or(",
    ];
    let mut names = BTreeSet::new();
    for method in METHODS {
        for (at, _) in text.match_indices(method) {
            let rest = text[at + method.len()..].trim_start();
            let Some(rest) = rest.strip_prefix('"') else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty() && rest[name.len()..].starts_with('"') {
                names.insert(name);
            }
        }
    }
    names
}

/// The `${NAME...}` variables a compose file interpolates.
pub fn compose_variables(compose: &str) -> BTreeSet<String> {
    compose
        .match_indices("${")
        .map(|(at, _)| {
            compose[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// The variables `.env.example` sets or shows (commented `# NAME=`).
pub fn documented_variables(env_example: &str) -> BTreeSet<String> {
    env_example
        .lines()
        .filter_map(|line| {
            let line = line.trim_start_matches('#').trim();
            let (name, _) = line.split_once('=')?;
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            valid.then(|| name.to_owned())
        })
        .collect()
}

/// Prefixes of the metrics the services export.
const OUR_METRICS: [&str; 6] = [
    "http_",
    "worker_",
    "broker_",
    "scheduler_",
    "db_pool_",
    "redis_pool_",
];

/// The names of our metrics that a PromQL expression uses, histograms by
/// their family name (`x_bucket` -> `x`).
pub fn metrics_in_promql(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut token = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            token.push(c);
            continue;
        }
        // A label name is followed by `=`, `!=` or `=~`; a metric is not.
        let is_label = matches!(c, '=' | '!');
        if !is_label && OUR_METRICS.iter().any(|p| token.starts_with(p)) {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| token.strip_suffix(s))
                .unwrap_or(&token);
            names.insert(family.to_owned());
        }
        token.clear();
    }
    names
}

/// The metric families a Prometheus text exposition declares (`# TYPE`).
pub fn metrics_exposed(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Every PromQL expression of the Grafana dashboard (`targets[].expr` of
/// each panel, rows included).
pub fn dashboard_expressions(dashboard: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(e)) = map.get("expr") {
                    out.push(e.clone());
                }
                map.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out
}

/// Every `expr:` of a Prometheus rules file (one-line or folded).
pub fn rule_expressions(rules_yaml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = rules_yaml.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        let mut expr = rest.trim().trim_start_matches(['|', '>']).to_owned();
        while let Some(next) = lines.peek() {
            let next_indent = next.len() - next.trim_start().len();
            if next.trim().is_empty() || next_indent <= indent {
                break;
            }
            expr.push(' ');
            expr.push_str(next.trim());
            lines.next();
        }
        out.push(expr);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lookups_are_found_across_lines() {
        let code = r#"env.raw("A_B") env.parse_or(
            "PORT_2", 1, "x") env.bool_or("ENABLE_SSE", true) env.raw(name) x.raw("lower")"#;
        let names: Vec<_> = env_calls(code).into_iter().collect();
        assert_eq!(names, ["A_B", "ENABLE_SSE", "PORT_2"]);
    }

    #[test]
    fn test_modules_are_left_out() {
        let code =
            "a(); #[cfg(test)]\nmod tests { fn x() { env.raw(\"T\"); } }\nenv.raw(\"KEPT\");";
        let kept = without_test_modules(code);
        assert!(kept.contains("KEPT") && !kept.contains("\"T\""), "{kept}");
    }

    #[test]
    fn metrics_and_not_labels_are_taken_from_promql() {
        let expr = r#"sum(rate(http_requests_total{status=~"5..",job="api"}[5m])) / histogram_quantile(0.99, rate(worker_job_duration_seconds_bucket{kind!="x"}[5m])) and broker_queue_depth"#;
        let names: Vec<_> = metrics_in_promql(expr).into_iter().collect();
        assert_eq!(
            names,
            [
                "broker_queue_depth",
                "http_requests_total",
                "worker_job_duration_seconds"
            ]
        );
    }

    #[test]
    fn documented_and_interpolated_variables() {
        let doc = documented_variables("A=1\n# B_C=2\n# a comment = no\n#D=\n");
        assert_eq!(doc.into_iter().collect::<Vec<_>>(), ["A", "B_C", "D"]);
        let used = compose_variables("x: ${X:-1}\ny: \"${Y_Z}\"\n");
        assert_eq!(used.into_iter().collect::<Vec<_>>(), ["X", "Y_Z"]);
    }
}
