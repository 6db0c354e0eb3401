//! Headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`), for tests that use the web UI as a person would.
//! The dozen WebDriver calls the tests need go over plain HTTP with the
//! harness's own client, so no WebDriver crate enters the build.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::process::{Proc, free_port, http, wait_for_port};

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session; screenshots go to `shots`, numbered in order.
pub struct Browser {
    session: String,
    port: u16,
    /// Where [`Browser::screenshot`] saves its files.
    pub shots: PathBuf,
    taken: usize,
    _driver: Proc,
    /// Ports this browser has logged in to (see [`crate::token`]).
    logged_in: std::sync::Mutex<std::collections::HashSet<u16>>,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session
    /// with a laptop-sized window.
    pub fn start(shots: PathBuf, log_dir: &std::path::Path) -> Browser {
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        let port = free_port();
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}"));
        let driver = Proc::spawn("chromedriver", cmd, log_dir.join("chromedriver.log"));
        assert!(wait_for_port(port, Duration::from_secs(30)), "chromedriver did not listen:\n{}", driver.output());
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1366,900"],
            },
        }}});
        let (code, body) = http(port, "POST", "/session", Some(&caps.to_string()));
        let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session ({code}): {body}"))
            .to_string();
        Browser { session, port, shots, taken: 0, _driver: driver, logged_in: Default::default() }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("/session/{}{path}", self.session);
        let (code, text) = http(self.port, method, &url, Some(&body.unwrap_or(json!({})).to_string()));
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(code == 200, "WebDriver {method} {path} failed ({code}): {text}");
        answer["value"].clone()
    }

    /// Opens `url` and waits for the page's script to have drawn data.
    pub fn goto(&self, url: &str) {
        self.log_in_for(url);
        self.call("POST", "/url", Some(json!({"url": url})));
        self.wait_until("the page's first refresh", Duration::from_secs(20), || {
            self.script(
                "return document.getElementById('live') && document.getElementById('live').textContent",
                json!([]),
            )
            .as_str()
            .is_some_and(|t| t.starts_with("live ·") || t == "not live")
        });
    }

    /// In a run with a token on every process, logs in once to the
    /// scheduler `url` names, as a person would.
    fn log_in_for(&self, url: &str) {
        // `scheme://host:port` of the page.
        let Some((scheme, rest)) = url.split_once("://") else { return };
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        let Some(port) = authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok()) else { return };
        let Some(token) = crate::token::for_port(port) else { return };
        if !self.logged_in.lock().unwrap().insert(port) {
            return;
        }
        let origin = format!("{scheme}://{authority}");
        self.call("POST", "/url", Some(json!({"url": format!("{origin}/login")})));
        self.type_into("#token", &token);
        self.click("#login");
        self.wait_until("the login", Duration::from_secs(10), || {
            self.script("return location.pathname", json!([])).as_str().is_some_and(|p| p != "/login")
        });
    }

    /// Opens `url` without waiting for anything.
    pub fn open(&self, url: &str) {
        self.log_in_for(url);
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    /// Runs `js` in the page with `args`; its return value.
    pub fn script(&self, js: &str, args: Value) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": js, "args": args})))
    }

    /// The visible text of each element matching `css`.
    pub fn texts(&self, css: &str) -> Vec<String> {
        let v = self.script("return [...document.querySelectorAll(arguments[0])].map(e => e.innerText)", json!([css]));
        v.as_array().map(|a| a.iter().map(|t| t.as_str().unwrap_or_default().to_string()).collect()).unwrap_or_default()
    }

    /// The visible text of the first element matching `css`, or "" if none.
    pub fn text(&self, css: &str) -> String {
        self.texts(css).into_iter().next().unwrap_or_default()
    }

    /// Waits until the first element matching `css` shows `wanted`; its text.
    pub fn wait_text(&self, css: &str, wanted: &str, timeout: Duration) -> String {
        let mut last = String::new();
        let found = self.poll(timeout, || {
            last = self.text(css);
            last.contains(wanted)
        });
        assert!(
            found,
            "'{css}' did not show '{wanted}' within {timeout:?}; it shows: '{last}'\npage: {}",
            self.text("main")
        );
        last
    }

    /// Clicks the first element matching `css`, as a user would.
    pub fn click(&self, css: &str) {
        let mut element = Value::Null;
        self.wait_until(&format!("'{css}' to appear"), Duration::from_secs(20), || {
            let (code, text) = http(
                self.port,
                "POST",
                &format!("/session/{}/element", self.session),
                Some(&json!({"using": "css selector", "value": css}).to_string()),
            );
            element = serde_json::from_str::<Value>(&text).map(|v| v["value"][ELEMENT].clone()).unwrap_or(Value::Null);
            code == 200 && element.is_string()
        });
        let id = element.as_str().expect("element id");
        self.call("POST", &format!("/element/{id}/click"), None);
    }

    /// Types `text` into the first element matching `css`, replacing its value.
    pub fn type_into(&self, css: &str, text: &str) {
        self.script("const e = document.querySelector(arguments[0]); e.value = ''; e.focus();", json!([css]));
        let (_, body) = http(
            self.port,
            "POST",
            &format!("/session/{}/element", self.session),
            Some(&json!({"using": "css selector", "value": css}).to_string()),
        );
        let element: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let id = element["value"][ELEMENT].as_str().unwrap_or_else(|| panic!("no '{css}': {body}")).to_string();
        self.call("POST", &format!("/element/{id}/value"), Some(json!({"text": text})));
    }

    /// Saves a PNG of the window as `NN-name.png` under [`Browser::shots`].
    pub fn screenshot(&mut self, name: &str) -> PathBuf {
        use base64::Engine;
        let png = self.call("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("base64 screenshot");
        self.taken += 1;
        let path = self.shots.join(format!("{:02}-{name}.png", self.taken));
        std::fs::write(&path, bytes).expect("write screenshot");
        path
    }

    fn poll(&self, timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    fn wait_until(&self, what: &str, timeout: Duration, done: impl FnMut() -> bool) {
        assert!(self.poll(timeout, done), "waited {timeout:?} for {what}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(self.port, "DELETE", &format!("/session/{}", self.session), None);
    }
}
