//! End to end: the `/docs` page of the real binary in headless Chromium, driven over the W3C
//! WebDriver protocol by `chromedriver`: it renders the paths, and "try it" reaches Kith.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kith_e2e::{Backend, Kith, TestDb};
use serde_json::{json, Value};

/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Debian's `chromium` and `chromium-driver` put their programs, or `None` (after a loud
/// message) when one is missing, unless `CI=true`, where that is a failure.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    };
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| find("chromium"));
    let driver = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .or_else(|| find("chromedriver"));
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ => {
            let why = "chromium or chromedriver is not installed \
                       (apt-get install -y chromium chromium-driver)";
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{why}");
            }
            eprintln!("\n!!!!! SKIPPING the /docs browser test: {why} !!!!!\n");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `chromedriver` and one headless Chromium session; both end on drop.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
}

impl Browser {
    fn start(chromium: &PathBuf, chromedriver: &PathBuf) -> Self {
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        let mut browser = Self {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            agent,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !browser
            .agent
            .get(format!("{}/status", browser.base))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_json::<Value>().ok())
            .is_some_and(|v| v["value"]["ready"] == true)
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1280,2000"],
            },
        }}});
        let answer = browser.send("POST", "/session", Some(caps));
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {answer}"))
            .to_owned();
        browser
    }

    /// One WebDriver command; answers its `value`, panicking on a WebDriver error.
    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let req = ureq::http::Request::builder().method(method).uri(&url);
        let res = match body {
            Some(b) => self.agent.run(
                req.header("Content-Type", "application/json")
                    .body(b.to_string())
                    .unwrap(),
            ),
            None => self.agent.run(req.body(()).unwrap()),
        };
        let mut res = res.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = res.status().as_u16();
        let v: Value = res.body_mut().read_json().unwrap();
        assert!(status == 200, "{method} {path}: {status} {v}");
        v["value"].clone()
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    fn go(&self, url: &str) {
        self.send(
            "POST",
            &self.session_path("/url"),
            Some(json!({"url": url})),
        );
    }

    /// Runs `script` in the page (its `arguments` are `args`) and answers what it returns.
    fn js(&self, script: &str, args: Value) -> Value {
        let body = json!({"script": script, "args": args});
        self.send("POST", &self.session_path("/execute/sync"), Some(body))
    }

    /// Polls `script` until it returns something other than null or false.
    fn wait_for(&self, what: &str, script: &str, args: Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.js(script, args.clone());
            if !v.is_null() && v != json!(false) {
                return v;
            }
            if Instant::now() > deadline {
                let path = self.screenshot("docs_page_failure.png");
                panic!(
                    "timed out waiting for {what}; screenshot at {}",
                    path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A real (WebDriver) click on an element reference returned by [`Browser::js`].
    fn click(&self, element: &Value) {
        let id = element[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("not an element: {element}"));
        let path = self.session_path(&format!("/element/{id}/click"));
        self.send("POST", &path, Some(json!({})));
    }

    /// Saves a PNG screenshot of the page under cargo's test temporary directory.
    fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.send("GET", &self.session_path("/screenshot"), None);
        let png = base64_decode(b64.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = self.agent.delete(url).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (the screenshot's encoding), without pulling a crate into the e2e tests.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64 byte {c}"),
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let digits: Vec<u32> = chunk
            .iter()
            .filter(|&&c| c != b'=')
            .map(|&c| u32::from(value(c)))
            .collect();
        let n = digits
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | d << (18 - 6 * i));
        let [_, a, b, c] = n.to_be_bytes();
        out.extend_from_slice(&[a, b, c][..digits.len().saturating_sub(1)]);
    }
    out
}

/// The paths the page shows, as Swagger UI renders them.
const LISTED_PATHS: &str = "return Array.from(document.querySelectorAll('.opblock-summary-path'))
    .map(e => e.getAttribute('data-path') || e.textContent.replace(/\\u200b/g, ''));";

/// The summary (clickable header) of the operation `arguments[0]` `arguments[1]`.
const OPERATION: &str = "return Array.from(document.querySelectorAll('.opblock')).find(b =>
    b.classList.contains('opblock-' + arguments[0]) &&
    (b.querySelector('.opblock-summary-path')?.getAttribute('data-path') ||
     b.querySelector('.opblock-summary-path')?.textContent.replace(/\\u200b/g, '')) === arguments[1]
  )?.querySelector('.opblock-summary') ?? null;";

#[test]
fn docs_page_lists_the_paths_and_tries_one() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let db = TestDb::new(Backend::Sqlite).unwrap();
    let kith = Kith::start(&db, &[]);
    let browser = Browser::start(&chromium, &chromedriver);
    browser.go(&format!("{}/docs", kith.base));

    // Swagger UI fetched /openapi.json from Kith and rendered every API's operations.
    let listed = browser.wait_for(
        "the operations to render",
        &format!("const p = (() => {{ {LISTED_PATHS} }})(); return p.length > 50 ? p : null;"),
        json!([]),
    );
    let listed: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for path in [
        "/health",
        "/friends",
        "/user/login",
        "/friendship/invite",
        "/api/v1/contact",
        "/api/v2/contacts",
        "/group/create",
    ] {
        assert!(
            listed.contains(&path),
            "{path} not listed; the page shows {listed:?}"
        );
    }

    // "Try it out" on GET /health, then "Execute": the page calls Kith and shows the answer.
    let summary = browser.wait_for("GET /health", OPERATION, json!(["get", "/health"]));
    browser.click(&summary);
    let block =
        "const s = (() => { ".to_owned() + OPERATION + " })(); const b = s?.closest('.opblock');";
    let try_out = browser.wait_for(
        "the Try it out button",
        &format!("{block} return b?.querySelector('.try-out__btn') ?? null;"),
        json!(["get", "/health"]),
    );
    browser.click(&try_out);
    let execute = browser.wait_for(
        "the Execute button",
        &format!("{block} return b?.querySelector('.btn.execute') ?? null;"),
        json!(["get", "/health"]),
    );
    browser.click(&execute);
    let status = browser.wait_for(
        "the live response",
        &format!(
            "{block} const c = b?.querySelector('.live-responses-table tr.response .response-col_status');
             return c ? c.textContent.trim() : null;"
        ),
        json!(["get", "/health"]),
    );
    let body = browser.js(
        &format!(
            "{block} return b?.querySelector('.live-responses-table tr.response .response-col_description')
                 ?.textContent ?? null;"
        ),
        json!(["get", "/health"]),
    );
    // The screenshot shows the answer the page got.
    browser.js(
        &format!(
            "{block} b?.querySelector('.live-responses-table')?.scrollIntoView(); return null;"
        ),
        json!(["get", "/health"]),
    );
    let shot = browser.screenshot("docs_page.png");
    println!("screenshot of /docs: {}", shot.display());
    assert!(
        status.as_str().is_some_and(|s| s.starts_with("200")),
        "try-it status {status}, body {body}"
    );
    assert!(
        body.as_str().is_some_and(|b| b.contains("\"ok\"")),
        "{body}"
    );
    drop(browser);
    kith.terminate();
}
