//! A headless Chromium driven over the W3C WebDriver protocol: Debian's
//! `chromium` and `chromium-driver` (`scripts/test` installs both), spoken
//! to with plain HTTP. Waits poll the page with a deadline; nothing sleeps
//! for a fixed time.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// How long a page may take to reach a state on a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

fn binary(variable: &str, default: &str) -> String {
    let path = std::env::var(variable).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: the browser tests need Debian's chromium and chromium-driver \
         (./scripts/test installs them; or set {variable})"
    );
    path
}

/// One chromedriver with one browser session; both end when this drops.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
}

impl Browser {
    /// A fresh headless browser (its own profile) with a `width`×`height` window.
    pub async fn start(width: u32, height: u32) -> Self {
        let chromium = binary("WA_GATEWAY_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = binary("WA_GATEWAY_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Its own process group, so the browsers it starts end with it.
        let driver = Command::new(chromedriver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(started.elapsed() < PATIENCE, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-extensions", "--no-first-run",
                format!("--window-size={width},{height}"),
            ]},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let created: Value =
            http.post(format!("{base}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let session = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}"));
        let browser = Self { http, session: format!("{base}/session/{session}"), driver };
        browser.set_size(width, height).await;
        browser
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let url = format!("{}{path}", self.session);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let ok = response.status().is_success();
        let value = response.json::<Value>().await.unwrap()["value"].take();
        if ok { Ok(value) } else { Err(value) }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body)).await.unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    pub async fn set_size(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({ "width": width, "height": height })).await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args })).await
    }

    /// Polls `script` until it returns something other than null, false or
    /// undefined, and returns that.
    pub async fn wait(&self, what: &str, script: &str, args: Value) -> Value {
        let started = Instant::now();
        loop {
            let value = self.run(script, args.clone()).await;
            if !(value.is_null() || value == Value::Bool(false)) {
                return value;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "waited {PATIENCE:?} for {what}; the page shows: {}",
                self.body_text().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for an element matching `css` whose text contains `needle`; its text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); \
                      return e && e.textContent.includes(arguments[1]) ? e.textContent : null;";
        let what = format!("{css} to say {needle:?}");
        self.wait(&what, script, json!([css, needle])).await.as_str().unwrap().to_owned()
    }

    /// The text of the page, for failure messages.
    pub async fn body_text(&self) -> String {
        self.run("return document.body ? document.body.innerText : '';", json!([]))
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    async fn element(&self, css: &str) -> String {
        let script = "return document.querySelector(arguments[0]) !== null;";
        self.wait(&format!("{css} to exist"), script, json!([css])).await;
        let found = self.post("/element", json!({ "using": "css selector", "value": css })).await;
        found.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).unwrap().to_owned()
    }

    /// Clicks the first element matching `css`, as a person would.
    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    /// Types `text` into the first element matching `css`, after clearing it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/clear"), json!({})).await;
        self.post(&format!("/element/{id}/value"), json!({ "text": text })).await;
    }

    /// The text of an open alert, confirm or prompt dialog.
    pub async fn dialog(&self) -> Option<String> {
        self.command(reqwest::Method::GET, "/alert/text", None).await.ok().and_then(|v| v.as_str().map(str::to_owned))
    }

    /// Emulates the colour scheme a person chose (through Chromium's DevTools protocol).
    pub async fn dark(&self, dark: bool) {
        let value = if dark { "dark" } else { "light" };
        let params = json!({"features": [{"name": "prefers-color-scheme", "value": value}]});
        self.post("/goog/cdp/execute", json!({"cmd": "Emulation.setEmulatedMedia", "params": params})).await;
    }

    /// Writes a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let png = self.command(reqwest::Method::GET, "/screenshot", None).await.unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// The browser's console entries since the last call: `(level, source, message)`.
    pub async fn log(&self) -> Vec<(String, String, String)> {
        let entries = self.post("/se/log", json!({ "type": "browser" })).await;
        let text = |e: &Value, k: &str| e[k].as_str().unwrap_or("").to_owned();
        entries
            .as_array()
            .map(|all| all.iter().map(|e| (text(e, "level"), text(e, "source"), text(e, "message"))).collect())
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
