//! What holds for every operation alike, added to the document in one
//! place: the problems any request can earn, and the NUL character that no
//! string may hold.

use serde_json::{Map, Value, json};

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// Adds to every operation the problems its request itself can earn, which
/// the extractors and the authentication answer alike on every route: 400
/// for a malformed path parameter or JSON body, 413 and 415 for a body too
/// large or not JSON, 422 for fields or query parameters that are wrong; for
/// operations that need a bearer token, 401 without a valid one, and 403 for a
/// caller without the permission their security requirement names (where it
/// names one: the others are for anyone signed in); and the
/// 503 of an unavailable dependency or a request out of time, which any can
/// meet. An operation that documents one of these already keeps its own
/// description.
pub fn add_common_responses(doc: &mut Value) {
    for_each_operation(doc, |op| {
        let params = op
            .get("parameters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let located = |place: &str| params.iter().any(|p| p["in"] == place);
        let body = op.get("requestBody").is_some();
        let bearer: Vec<&Value> = op
            .get("security")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("bearer"))
            .collect();
        let secured = !bearer.is_empty();
        let guarded = bearer
            .iter()
            .any(|scopes| scopes.as_array().is_some_and(|s| !s.is_empty()));
        let mut added: Vec<(&str, &str)> = Vec::new();
        if body || located("path") {
            added.push((
                "400",
                "Malformed request: a path parameter that is not a UUID, or a body that is not a JSON object",
            ));
        }
        if secured {
            added.push((
                "401",
                "No valid access token: none given, malformed, expired, or its session has ended",
            ));
        }
        if guarded {
            added.push((
                "403",
                "The caller lacks a permission this operation needs (named in its security requirement)",
            ));
        }
        if body {
            added.push((
                "413",
                "The body is larger than MAX_BODY_BYTES (1 MiB unless configured)",
            ));
            added.push(("415", "The body is not application/json"));
        }
        if body || located("query") || located("header") {
            added.push((
                "422",
                "Invalid fields or query parameters, each named in `errors`",
            ));
        }
        added.push((
            "503",
            "A service the api depends on is unavailable, or the request ran out of time \
             (REQUEST_TIMEOUT_SECONDS)",
        ));
        let responses = op
            .get_mut("responses")
            .and_then(Value::as_object_mut)
            .expect("every operation has responses");
        for (status, description) in added {
            responses
                .entry(status)
                .or_insert_with(|| problem(description));
        }
    });
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

/// The pattern of a string that holds no NUL character.
pub const NO_NUL: &str = "^[^\\u0000]*$";

/// Every string a request can carry (in a body, at any depth, or in a query
/// or header parameter) is refused with a NUL character in it (PostgreSQL
/// cannot store one): each such string schema without a stricter rule of
/// its own (a pattern, an enum, a constant or a format) says so.
pub fn refuse_nul_in_strings(doc: &mut Value) {
    let mut roots: Vec<Value> = Vec::new();
    for_each_operation(doc, |op| {
        if let Some(content) = op.get("requestBody").and_then(|b| b.get("content")) {
            roots.extend(
                content
                    .as_object()
                    .into_iter()
                    .flat_map(|c| c.values())
                    .cloned(),
            );
        }
        for param in op
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            roots.push(param.clone());
        }
    });
    // The components the requests reach, followed through `$ref`s.
    let mut reached: Vec<String> = Vec::new();
    let mut pending = roots.clone();
    while let Some(schema) = pending.pop() {
        refs_in(&schema, &mut |name| {
            if !reached.iter().any(|r| r == name) {
                reached.push(name.to_owned());
                pending.push(doc["components"]["schemas"][name].clone());
            }
        });
    }
    for name in &reached {
        if let Some(schema) = doc["components"]["schemas"].get_mut(name) {
            add_no_nul(schema);
        }
    }
    // Schemas written inline in a parameter or body.
    for_each_operation(doc, |op| {
        if let Some(content) = op.get_mut("requestBody").and_then(|b| b.get_mut("content")) {
            add_no_nul(content);
        }
        if let Some(params) = op.get_mut("parameters") {
            add_no_nul(params);
            // A query or header value is text, never JSON's null.
            for param in params.as_array_mut().into_iter().flatten() {
                if let Some(Value::Array(types)) = param["schema"].get_mut("type") {
                    types.retain(|t| t != "null");
                }
            }
        }
    });
}

fn for_each_operation(doc: &mut Value, mut f: impl FnMut(&mut Map<String, Value>)) {
    for item in doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|p| p.values_mut())
    {
        for method in METHODS {
            if let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) {
                f(op);
            }
        }
    }
}

/// Calls `f` with the name of every component `schema` refers to.
fn refs_in(schema: &Value, f: &mut impl FnMut(&str)) {
    match schema {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                f(name);
            }
            map.values().for_each(|v| refs_in(v, f));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, f)),
        _ => {}
    }
}

/// Adds [`NO_NUL`] to every string schema in `schema` (not following
/// `$ref`s) that has no rule of its own.
fn add_no_nul(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let is_string = match map.get("type") {
                Some(Value::String(t)) => t == "string",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
                _ => false,
            };
            let ruled = ["pattern", "enum", "const", "format"]
                .iter()
                .any(|k| map.contains_key(*k));
            if is_string && !ruled {
                map.insert("pattern".into(), Value::String(NO_NUL.into()));
            }
            map.values_mut().for_each(add_no_nul);
        }
        Value::Array(items) => items.iter_mut().for_each(add_no_nul),
        _ => {}
    }
}
