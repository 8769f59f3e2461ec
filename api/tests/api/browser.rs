//! Headless Chromium (Debian's `chromium`, installed by
//! `deploy/local/install-test-deps.sh`) driven over the Chrome DevTools
//! Protocol: a page to load, scripts to run in it, keys to type, waits for
//! what it shows, screenshots, and everything it logged (console, uncaught
//! errors, Content-Security-Policy violations).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Browser {
    child: tokio::process::Child,
    socket: Socket,
    next_id: u64,
    profile: PathBuf,
    /// What the page logged: console messages, uncaught exceptions and the
    /// browser's own log (where CSP violations are reported).
    pub log: Vec<String>,
}

impl Browser {
    /// Starts Chromium with a fresh profile and attaches to its first page.
    pub async fn launch() -> Browser {
        let profile =
            std::env::temp_dir().join(format!("ferro-chromium-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&profile).unwrap();
        let child = tokio::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium is installed (deploy/local/install-test-deps.sh installs it)");
        // Chromium writes the port it listens on into the profile.
        let port_file = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|text| text.lines().next()?.trim().parse::<u16>().ok())
            {
                break port;
            }
            assert!(Instant::now() < deadline, "chromium did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page = targets
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["type"] == "page"))
            .unwrap_or_else(|| panic!("no page target: {targets}"));
        let url = page["webSocketDebuggerUrl"].as_str().unwrap();
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut browser = Browser {
            child,
            socket,
            next_id: 0,
            profile,
            log: Vec::new(),
        };
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            browser.send(domain, json!({})).await;
        }
        browser
    }

    /// Sends a command and answers its result, keeping the events that
    /// arrive meanwhile in [`Browser::log`].
    pub async fn send(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({"id": id, "method": method, "params": params});
        self.socket
            .send(Message::Text(command.to_string().into()))
            .await
            .unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .expect("the DevTools connection is open")
                .unwrap();
            let Message::Text(text) = message else {
                continue;
            };
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
            self.keep_event(&value);
        }
    }

    fn keep_event(&mut self, event: &Value) {
        let p = &event["params"];
        let line = match event["method"].as_str() {
            Some("Runtime.consoleAPICalled") => format!(
                "console.{}: {}",
                p["type"].as_str().unwrap_or(""),
                p["args"]
                    .as_array()
                    .map(|args| args
                        .iter()
                        .map(|a| a["value"].to_string())
                        .collect::<Vec<_>>()
                        .join(" "))
                    .unwrap_or_default()
            ),
            Some("Runtime.exceptionThrown") => format!(
                "uncaught: {}",
                p["exceptionDetails"]["exception"]["description"]
                    .as_str()
                    .or(p["exceptionDetails"]["text"].as_str())
                    .unwrap_or("")
            ),
            Some("Log.entryAdded") => format!(
                "log.{}: {}",
                p["entry"]["level"].as_str().unwrap_or(""),
                p["entry"]["text"].as_str().unwrap_or("")
            ),
            _ => return,
        };
        self.log.push(line);
    }

    pub async fn goto(&mut self, url: &str) {
        self.send("Page.navigate", json!({"url": url})).await;
    }

    /// Runs `expression` in the page (awaiting a promise) and answers its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let out = self
            .send(
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        assert!(
            out.get("exceptionDetails").is_none(),
            "{expression} threw: {}",
            out["exceptionDetails"]
        );
        out["result"]["value"].clone()
    }

    /// Waits (up to `secs`) until `condition` is truthy in the page; answers
    /// its value.
    pub async fn wait_for(&mut self, condition: &str, secs: u64, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let expression =
            format!("(() => {{ try {{ return ({condition}); }} catch (_) {{ return null; }} }})()");
        loop {
            let value = self.eval(&expression).await;
            if !(value.is_null() || value == false || value == "" || value == 0) {
                return value;
            }
            if Instant::now() > deadline {
                let body = self
                    .eval("document.body ? document.body.innerText : ''")
                    .await;
                panic!(
                    "the page never showed {what}\npage text:\n{}\nlog:\n{}",
                    body.as_str().unwrap_or(""),
                    self.log.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the element `selector` finds (it must be there).
    pub async fn click(&mut self, selector: &str) {
        let clicked = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({}); if (!e) return false; e.click(); return true; }})()",
                json!(selector)
            ))
            .await;
        assert_eq!(clicked, true, "nothing to click at {selector}");
    }

    /// Focuses `selector` and types `text` into it as keystrokes would.
    pub async fn type_into(&mut self, selector: &str, text: &str) {
        self.eval(&format!(
            "document.querySelector({}).focus()",
            json!(selector)
        ))
        .await;
        self.send("Input.insertText", json!({"text": text})).await;
    }

    /// Presses a key (`Enter`, `Tab`, `ArrowRight`, ...) on what has focus.
    pub async fn press(&mut self, key: &str, code: u32) {
        for kind in ["rawKeyDown", "keyUp"] {
            let mut event = json!({"type": kind, "key": key, "code": key,
                "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code});
            if key == "Enter" && kind == "rawKeyDown" {
                self.send("Input.dispatchKeyEvent", event.clone()).await;
                event = json!({"type": "char", "key": "Enter", "text": "\r"});
            }
            self.send("Input.dispatchKeyEvent", event).await;
        }
    }

    /// The viewport: width and height in CSS pixels, and whether it is a phone.
    pub async fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.send(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
    }

    /// Saves a PNG of the whole page at `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .send(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// The logged lines that are errors: uncaught exceptions, console
    /// errors, and what the browser reported (CSP violations among them).
    pub fn errors(&self) -> Vec<&String> {
        self.log
            .iter()
            .filter(|l| {
                l.starts_with("uncaught")
                    || l.starts_with("console.error")
                    || l.starts_with("log.error")
                    || l.contains("Content Security Policy")
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Where tests leave what a person should be able to look at afterwards
/// (screenshots): `TEST_ARTIFACTS_DIR`, or `test-artifacts` in the target
/// directory.
pub fn artifacts_dir(subject: &str) -> PathBuf {
    std::env::var_os("TEST_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .unwrap()
                .join("test-artifacts")
        })
        .join(subject)
}
