//! MIBs (issue 25): uploaded through nginx, compiled by the worker with the
//! tenant's earlier modules and the built-in base modules, browsed by OID,
//! name and text; a module with a missing import and a file that is no MIB
//! are kept as errors, not failed jobs.

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::deferred::wait_job;
use crate::nginx::Nginx;
use crate::support::{self, TestApp};

const TEST_MIB: &str = r#"FERRO-TEST-MIB DEFINITIONS ::= BEGIN
IMPORTS MODULE-IDENTITY, OBJECT-TYPE, Integer32, enterprises FROM SNMPv2-SMI
        TEXTUAL-CONVENTION, DisplayString FROM SNMPv2-TC;
ferroTest MODULE-IDENTITY LAST-UPDATED "202612080000Z" ORGANIZATION "Ferrostack"
    CONTACT-INFO "none" DESCRIPTION "A test module." ::= { enterprises 99999 }
PortState ::= TEXTUAL-CONVENTION STATUS current DESCRIPTION "Up or down."
    SYNTAX INTEGER { up(1), down(2) }
ferroObjects OBJECT IDENTIFIER ::= { ferroTest 1 }
ferroName OBJECT-TYPE SYNTAX DisplayString (SIZE (0..64)) MAX-ACCESS read-only
    STATUS current DESCRIPTION "The box's name." ::= { ferroObjects 1 }
ferroPortTable OBJECT-TYPE SYNTAX SEQUENCE OF FerroPortEntry MAX-ACCESS not-accessible
    STATUS current DESCRIPTION "The box's ports." ::= { ferroObjects 2 }
ferroPortEntry OBJECT-TYPE SYNTAX FerroPortEntry MAX-ACCESS not-accessible
    STATUS current DESCRIPTION "A port." INDEX { ferroPortIndex } ::= { ferroPortTable 1 }
FerroPortEntry ::= SEQUENCE { ferroPortIndex Integer32, ferroPortState PortState }
ferroPortIndex OBJECT-TYPE SYNTAX Integer32 (1..4096) MAX-ACCESS not-accessible
    STATUS current DESCRIPTION "The port's number." ::= { ferroPortEntry 1 }
ferroPortState OBJECT-TYPE SYNTAX PortState MAX-ACCESS read-only
    STATUS current DESCRIPTION "Whether the port is up." ::= { ferroPortEntry 2 }
END
"#;

const VENDOR_MIB: &str = r#"FERRO-VENDOR-MIB DEFINITIONS ::= BEGIN
IMPORTS OBJECT-TYPE, Integer32 FROM SNMPv2-SMI
        vendorRoot FROM NO-SUCH-MIB;
vendorThing OBJECT-TYPE SYNTAX Integer32 MAX-ACCESS read-only STATUS current
    DESCRIPTION "Under a root from a missing module." ::= { vendorRoot 1 }
END
"#;

/// Uses FERRO-TEST-MIB, uploaded before it.
const EXTRA_MIB: &str = r#"FERRO-EXTRA-MIB DEFINITIONS ::= BEGIN
IMPORTS OBJECT-TYPE FROM SNMPv2-SMI
        PortState, ferroObjects FROM FERRO-TEST-MIB;
ferroUplinkState OBJECT-TYPE SYNTAX PortState MAX-ACCESS read-only STATUS current
    DESCRIPTION "The uplink's state." ::= { ferroObjects 3 }
END
"#;

async fn upload(url: &str, token: &str, files: &[(&str, &[u8])]) -> (StatusCode, Value) {
    let mut form = Form::new();
    for (name, bytes) in files {
        form = form.part(
            "file",
            Part::bytes(bytes.to_vec()).file_name(name.to_string()),
        );
    }
    let res = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn module<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no module {name}: {list}"))
}

#[tokio::test]
async fn mibs_are_compiled_with_earlier_uploads_and_browsed_by_oid_name_and_text() {
    let app = TestApp::spawn().await;
    let nginx = Nginx::start(&app);
    let worker = support::start_worker(&app, app.db.app().await, "mib-worker", 2);
    let token = app.admin_token().await;

    let (status, body) = upload(
        &nginx.url("/api/v1/mibs"),
        &token,
        &[
            ("FERRO-TEST-MIB.txt", TEST_MIB.as_bytes()),
            ("vendor.mib", VENDOR_MIB.as_bytes()),
            ("blob.bin", b"\x7fELF\x02\x01\x01\x00\x00\xff"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["job"]["kind"], "mib.compile");
    assert_eq!(body["files"].as_array().unwrap().len(), 3);
    let job = body["job"]["id"].as_str().unwrap().to_owned();
    let done = wait_job(&app, &token, &job, 30, |j| {
        j["status"] == "succeeded" || j["status"] == "failed"
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");

    let list = app.get("/api/v1/mibs", &token).await.body;
    assert_eq!(list["total"], 3, "{list}");
    let ok = module(&list, "FERRO-TEST-MIB");
    assert_eq!(ok["status"], "ok", "{ok}");
    assert_eq!(
        ok["imports"],
        serde_json::json!(["SNMPv2-SMI", "SNMPv2-TC"])
    );
    assert!(ok["objects"].as_i64().unwrap() >= 7, "{ok}");
    let broken = module(&list, "FERRO-VENDOR-MIB");
    assert_eq!(broken["status"], "error");
    assert!(
        broken["diagnostics"].as_array().unwrap().iter().any(|d| {
            d["code"] == "import-module-not-found"
                && d["message"].as_str().unwrap().contains("NO-SUCH-MIB")
        }),
        "the missing import is named: {broken}"
    );
    let blob = module(&list, "blob.bin");
    assert_eq!(blob["status"], "error");
    assert_eq!(blob["diagnostics"][0]["code"], "not-a-mib");

    let state = app
        .get(
            "/api/v1/mibs/objects?name=FERRO-TEST-MIB::ferroPortState",
            &token,
        )
        .await;
    assert_eq!(state.status, StatusCode::OK, "{}", state.body);
    let state = state.body;
    assert_eq!(state["oid"], "1.3.6.1.4.1.99999.1.2.1.2");
    assert_eq!(state["kind"], "column");
    assert_eq!(state["syntax"], "PortState");
    assert_eq!(state["base_type"], "Integer32");
    assert_eq!(state["access"], "read-only");
    assert_eq!(
        state["enums"],
        serde_json::json!([{"label": "up", "value": 1}, {"label": "down", "value": 2}])
    );
    assert_eq!(
        state["indexes"],
        serde_json::json!([{"name": "ferroPortIndex", "implied": false}])
    );

    let objects = app
        .get("/api/v1/mibs/objects?oid=1.3.6.1.4.1.99999.1", &token)
        .await
        .body;
    assert_eq!(objects["name"], "ferroObjects");
    let children: Vec<&str> = objects["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(children, ["ferroName", "ferroPortTable"]);
    let name = app
        .get("/api/v1/mibs/objects?oid=1.3.6.1.4.1.99999.1.1", &token)
        .await
        .body;
    assert_eq!(
        (&name["display_hint"], &name["sizes"]),
        (&serde_json::json!("255a"), &serde_json::json!(["0..64"]))
    );
    // The base modules are in the tree too.
    let enterprises = app
        .get("/api/v1/mibs/objects?name=enterprises", &token)
        .await
        .body;
    assert_eq!(enterprises["oid"], "1.3.6.1.4.1");

    let found = app.get("/api/v1/mibs/objects?q=port", &token).await.body;
    let names: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for expected in ["ferroPortTable", "ferroPortEntry", "ferroPortState"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }

    // A later upload compiles against the earlier one.
    let (status, body) = upload(
        &app.url("/api/v1/mibs"),
        &token,
        &[("extra.txt", EXTRA_MIB.as_bytes())],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job = body["job"]["id"].as_str().unwrap().to_owned();
    wait_job(&app, &token, &job, 30, |j| j["status"] == "succeeded").await;
    let list = app.get("/api/v1/mibs", &token).await.body;
    assert_eq!(module(&list, "FERRO-EXTRA-MIB")["status"], "ok", "{list}");
    assert_eq!(module(&list, "FERRO-TEST-MIB")["status"], "ok");
    let uplink = app
        .get("/api/v1/mibs/objects?name=ferroUplinkState", &token)
        .await
        .body;
    assert_eq!(uplink["oid"], "1.3.6.1.4.1.99999.1.3");
    assert_eq!(uplink["syntax"], "PortState");

    // Bad queries; another tenant sees none of it.
    for (query, status) in [
        ("", StatusCode::UNPROCESSABLE_ENTITY),
        ("?oid=1.3&name=x", StatusCode::UNPROCESSABLE_ENTITY),
        ("?oid=1.3.six", StatusCode::UNPROCESSABLE_ENTITY),
        ("?oid=1.3.6.1.4.1.424242", StatusCode::NOT_FOUND),
        ("?name=FERRO-TEST-MIB::nothingHere", StatusCode::NOT_FOUND),
    ] {
        let reply = app
            .get(&format!("/api/v1/mibs/objects{query}"), &token)
            .await;
        assert_eq!(reply.status, status, "{query}: {}", reply.body);
    }
    let (_, other) = app.tenant_with_admin("mibs-other").await;
    assert_eq!(app.get("/api/v1/mibs", &other).await.body["total"], 0);
    let theirs = app
        .get("/api/v1/mibs/objects?name=ferroPortState", &other)
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    worker.cancel();
}

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in files {
        out.start_file(*name, options).unwrap();
        out.write_all(bytes).unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[tokio::test]
async fn a_zip_of_mibs_is_compiled_and_a_zip_bomb_is_refused_whole() {
    let app = TestApp::spawn().await;
    let worker = support::start_worker(&app, app.db.app().await, "zip-worker", 2);
    let token = app.admin_token().await;
    let set = zip_of(&[
        ("mibs/FERRO-TEST-MIB.txt", TEST_MIB.as_bytes()),
        ("mibs/FERRO-EXTRA-MIB.txt", EXTRA_MIB.as_bytes()),
        ("mibs/README", b"These are test MIBs."),
    ]);
    // 60 MB of one byte: about a thousand times smaller zipped.
    let bomb = zip_of(&[
        ("BOMB-MIB.txt", TEST_MIB.as_bytes()),
        ("padding.txt", &vec![b' '; 60 * 1024 * 1024]),
    ]);
    let (status, body) = upload(
        &app.url("/api/v1/mibs"),
        &token,
        &[("set.zip", &set), ("bomb.zip", &bomb)],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job = body["job"]["id"].as_str().unwrap().to_owned();
    let done = wait_job(&app, &token, &job, 60, |j| {
        j["status"] == "succeeded" || j["status"] == "failed"
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let list = app.get("/api/v1/mibs", &token).await.body;
    assert_eq!(module(&list, "FERRO-TEST-MIB")["status"], "ok", "{list}");
    assert_eq!(module(&list, "FERRO-EXTRA-MIB")["status"], "ok", "{list}");
    let bomb = module(&list, "bomb.zip");
    assert_eq!(bomb["status"], "error");
    assert_eq!(bomb["diagnostics"][0]["code"], "archive-refused", "{bomb}");
    assert_eq!(list["total"], 3, "nothing of the bomb is compiled: {list}");
    worker.cancel();
}
