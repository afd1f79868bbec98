//! The end-to-end harness: spawns the real `kith` binary on a free port against a fresh database
//! (a temporary SQLite file, or a new PostgreSQL database), and speaks HTTP to it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod proxy;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the PostgreSQL server (`KITH_TEST_PG_URL`, default 127.0.0.1:5432).
    Postgres,
}

/// Runs a test body on both backends: generates `<name>_sqlite` and `<name>_postgres`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn sqlite() {
                let db = $crate::TestDb::new($crate::Backend::Sqlite).unwrap();
                ($body)(db);
            }
            #[test]
            fn postgres() {
                if let Some(db) = $crate::TestDb::new($crate::Backend::Postgres) {
                    ($body)(db);
                }
            }
        }
    };
}

fn pg_admin_url() -> String {
    std::env::var("KITH_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn random_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

/// A database for one test, dropped afterwards.
#[derive(Debug)]
pub struct TestDb {
    /// The backend.
    pub backend: Backend,
    /// The URL to give Kith.
    pub url: String,
    pg_name: Option<String>,
    /// Holds the SQLite file and the SMS outbox.
    pub dir: tempfile::TempDir,
}

impl TestDb {
    /// A fresh database. For PostgreSQL, `None` (after a loud message) when the server cannot be
    /// reached, unless `CI=true`, where that is a failure.
    pub fn new(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => Some(Self {
                backend,
                url: format!("sqlite://{}", dir.path().join("kith.db").display()),
                pg_name: None,
                dir,
            }),
            Backend::Postgres => {
                let admin = pg_admin_url();
                let mut client = match postgres::Client::connect(&admin, postgres::NoTls) {
                    Ok(c) => c,
                    Err(e) => {
                        if std::env::var("CI").as_deref() == Ok("true") {
                            panic!("PostgreSQL at {admin} is unreachable in CI: {e}");
                        }
                        eprintln!(
                            "\n!!!!! SKIPPING PostgreSQL end-to-end test: {admin} is unreachable ({e}) !!!!!\n"
                        );
                        return None;
                    }
                };
                let name = format!("kith_e2e_{}", random_suffix());
                client
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .unwrap();
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                Some(Self {
                    backend,
                    url: format!("{base}/{name}"),
                    pg_name: Some(name),
                    dir,
                })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name {
            if let Ok(mut c) = postgres::Client::connect(&pg_admin_url(), postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// The path of the `kith` binary: `KITH_BIN`, or the one cargo built beside this test.
pub fn kith_bin() -> PathBuf {
    if let Ok(p) = std::env::var("KITH_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target/<profile>/kith
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join(format!("kith{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} does not exist: run `cargo build -p kith-server` or set KITH_BIN",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running Kith.
#[derive(Debug)]
pub struct Kith {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Where SMS codes land.
    pub outbox: PathBuf,
    /// The database URL it runs on.
    pub db_url: String,
    agent: ureq::Agent,
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
    /// Every `Set-Cookie`.
    pub cookies: Vec<String>,
    /// The headers, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub text: String,
}

impl Answer {
    /// The SealTalk `code`.
    pub fn code(&self) -> i64 {
        self.body["code"].as_i64().unwrap_or(-1)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Kith {
    /// Starts Kith on `db` with extra environment variables, and waits for `/health`.
    pub fn start(db: &TestDb, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let outbox = db.dir.path().join("outbox.jsonl");
        let mut cmd = Command::new(kith_bin());
        cmd.arg("serve")
            .env("KITH_BIND", format!("127.0.0.1:{port}"))
            .env("KITH_DATABASE_URL", &db.url)
            .env("KITH_SMS_OUTBOX", &outbox)
            .env("KITH_LOG", "warn")
            .env("KITH_BCRYPT_COST", "10")
            .env("KITH_DB_POOL_SIZE", "8")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            // Below actix-web's 5 s keep-alive: a pooled connection the server may already have
            // closed is never reused (a POST on one fails with "Peer disconnected", not retried).
            .max_idle_age(Duration::from_secs(2))
            .build()
            .new_agent();
        let mut kith = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            outbox,
            db_url: db.url.clone(),
            agent,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = kith.child.try_wait() {
                panic!("kith exited during start-up: {status}");
            }
            if kith.try_get("/health").is_some_and(|a| a.status == 200) {
                return kith;
            }
            assert!(Instant::now() < deadline, "kith did not become healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn try_get(&self, path: &str) -> Option<Answer> {
        let res = self.agent.get(format!("{}{path}", self.base)).call().ok()?;
        Some(read(res))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            assert!(Instant::now() < deadline, "kith did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A request with an optional JSON body and Bearer token.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        bearer: Option<&str>,
    ) -> Answer {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = bearer {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let res = match body {
            Some(b) => {
                let req = req
                    .header("Content-Type", "application/json")
                    .body(b.to_string())
                    .unwrap();
                self.agent.run(req)
            }
            None => self.agent.run(req.body(()).unwrap()),
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        read(res)
    }

    /// A raw request with a string body and headers.
    pub fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: String) -> Answer {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        read(self.agent.run(req.body(body).unwrap()).unwrap())
    }

    /// POST with a JSON body.
    pub fn post(&self, path: &str, body: Value, bearer: Option<&str>) -> Answer {
        self.call("POST", path, Some(&body), bearer)
    }

    /// GET.
    pub fn get(&self, path: &str, bearer: Option<&str>) -> Answer {
        self.call("GET", path, None, bearer)
    }

    /// The last code the outbox holds for `e164`.
    pub fn last_code(&self, e164: &str) -> Option<String> {
        let file = std::fs::File::open(&self.outbox).ok()?;
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .filter(|v| v["phone"] == e164)
            .last()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
    }

    /// Sends and verifies a code for `+86 <national>`, returning the verification token.
    pub fn verification_token(&self, national: &str) -> String {
        let a = self.post(
            "/user/send_code",
            serde_json::json!({"region": 86, "phone": national}),
            None,
        );
        assert_eq!(a.code(), 200, "send_code: {}", a.text);
        let code = self.last_code(&format!("+86{national}")).unwrap();
        let a = self.post(
            "/user/verify_code",
            serde_json::json!({"region": 86, "phone": national, "code": code}),
            None,
        );
        assert_eq!(a.code(), 200, "verify_code: {}", a.text);
        a.body["result"]["verification_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Registers `+86 <national>` with `password` and logs in: (id, session token).
    pub fn sign_up(&self, national: &str, nickname: &str, password: &str) -> (String, String) {
        let vt = self.verification_token(national);
        let a = self.post(
            "/user/register",
            serde_json::json!({"nickname": nickname, "password": password, "verification_token": vt}),
            None,
        );
        assert_eq!(a.code(), 200, "register: {}", a.text);
        let id = a.body["result"]["id"].as_str().unwrap().to_owned();
        let a = self.post(
            "/user/login",
            serde_json::json!({"region": 86, "phone": national, "password": password}),
            None,
        );
        assert_eq!(a.code(), 200, "login: {}", a.text);
        (id, a.body["result"]["token"].as_str().unwrap().to_owned())
    }
}

fn read(res: ureq::http::Response<ureq::Body>) -> Answer {
    let status = res.status().as_u16();
    let headers: Vec<(String, String)> = res
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let cookies = headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.clone())
        .collect();
    let text = res.into_body().read_to_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        cookies,
        headers,
        text,
    }
}

impl Drop for Kith {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
