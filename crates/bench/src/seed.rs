//! `kith-bench seed`: signs users up through the public API, reading SMS codes from the outbox.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::http::{Conn, Req, Target};
use crate::users::{self, User};
use crate::BoxError;

/// How long to wait for the server to append a code to the outbox.
const CODE_WAIT: Duration = Duration::from_secs(10);
/// How often the outbox is re-read while waiting.
const CODE_POLL: Duration = Duration::from_millis(20);

/// Arguments of `kith-bench seed`: through the API of a running server (`--url`, `--outbox`),
/// or in bulk straight into an empty database (`--db` and the bulk options).
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The server, e.g. http://127.0.0.1:8080 (API mode).
    #[arg(long, required_unless_present = "db", conflicts_with = "db")]
    url: Option<String>,
    /// Bulk mode: `postgres://…` or `sqlite://PATH`, migrated and filled directly.
    #[arg(long)]
    db: Option<String>,
    /// How many users to create.
    #[arg(long)]
    users: usize,
    /// The server's KITH_SMS_OUTBOX file (API mode).
    #[arg(long, required_unless_present = "db")]
    outbox: Option<PathBuf>,
    /// The bulk mode's data set.
    #[command(flatten)]
    bulk: crate::bulk::BulkArgs,
    /// Where to write the users (JSON lines: id, token, phone, password).
    #[arg(long)]
    out: PathBuf,
    /// Sign-ups in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// The first national number; user i gets this plus i.
    #[arg(long, default_value_t = 13_900_000_000)]
    first_phone: u64,
}

/// One outbox line, as the server's outbox gateway writes it.
#[derive(Deserialize)]
struct OutboxLine {
    phone: String,
    code: String,
    sent_at: i64,
}

/// The outbox read incrementally, so that waiting for each code costs only the new lines.
#[derive(Debug)]
struct Outbox {
    path: PathBuf,
    state: Mutex<OutboxState>,
}

#[derive(Debug, Default)]
struct OutboxState {
    offset: u64,
    partial: Vec<u8>,
    /// The latest code seen per E.164 phone, with its `sent_at`.
    latest: HashMap<String, (String, i64)>,
}

impl OutboxState {
    fn catch_up(&mut self, path: &PathBuf) -> Result<(), BoxError> {
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("outbox {}: {e}", path.display()).into()),
        };
        if file.metadata()?.len() < self.offset {
            // Truncated behind our back: start over rather than read from the middle of a line.
            self.offset = 0;
            self.partial.clear();
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut fresh = Vec::new();
        let read = file.read_to_end(&mut fresh)?;
        self.offset += read as u64;
        self.partial.extend_from_slice(&fresh);
        let Some(last_newline) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        let rest = self.partial.split_off(last_newline + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        for line in complete.split(|&b| b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            // Lines of other shapes are not ours to judge; only well-formed codes matter here.
            if let Ok(m) = serde_json::from_slice::<OutboxLine>(line) {
                self.latest.insert(m.phone, (m.code, m.sent_at));
            }
        }
        Ok(())
    }
}

impl Outbox {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            state: Mutex::new(OutboxState::default()),
        }
    }

    /// Waits for a code to `e164` sent at or after `not_before` (epoch ms).
    async fn code_for(&self, e164: &str, not_before: i64) -> Result<String, BoxError> {
        let deadline = Instant::now() + CODE_WAIT;
        loop {
            {
                let mut state = self.state.lock().await;
                state.catch_up(&self.path)?;
                if let Some((code, sent_at)) = state.latest.get(e164) {
                    if *sent_at >= not_before {
                        return Ok(code.clone());
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no code for {e164} in {} after {CODE_WAIT:?}: is KITH_SMS_OUTBOX this file?",
                    self.path.display()
                )
                .into());
            }
            tokio::time::sleep(CODE_POLL).await;
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Posts a SealTalk call and returns its `result`, or an error naming the step.
async fn call(conn: &mut Conn, path: &str, body: Value) -> Result<Value, BoxError> {
    let (status, bytes) = conn
        .send(&Req::post_json(path, &body))
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    if !status.is_success() {
        return Err(format!("{path}: http {status}: {text}").into());
    }
    let envelope: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{path}: {e}: {text}"))?;
    match envelope.get("code").and_then(Value::as_i64) {
        Some(200) => Ok(envelope.get("result").cloned().unwrap_or(Value::Null)),
        Some(5000) => Err(format!(
            "{path}: rate limited ({text}); start the server with large \
             KITH_SMS_PER_IP_HOURLY and KITH_SMS_GLOBAL_HOURLY"
        )
        .into()),
        _ => Err(format!("{path}: {text}").into()),
    }
}

fn field(result: &Value, name: &str, step: &str) -> Result<String, BoxError> {
    result
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("{step}: no string result.{name} in {result}").into())
}

/// The password of user `i`: unique, within the 6–20 byte rule, and not on the common list.
fn password_for(i: usize) -> String {
    format!("kb-{i:08}-pw")
}

/// Sends a code, verifies it, registers and logs in one user.
async fn seed_one(
    conn: &mut Conn,
    outbox: &Outbox,
    i: usize,
    phone: u64,
) -> Result<User, BoxError> {
    let phone = phone.to_string();
    let before = now_ms();
    call(
        conn,
        "/user/send_code",
        json!({"region": 86, "phone": phone}),
    )
    .await?;
    let code = outbox.code_for(&format!("+86{phone}"), before).await?;
    let verified = call(
        conn,
        "/user/verify_code",
        json!({"region": 86, "phone": phone, "code": code}),
    )
    .await?;
    let verification_token = field(&verified, "verification_token", "verify_code")?;
    let password = password_for(i);
    let registered = call(
        conn,
        "/user/register",
        json!({
            "nickname": format!("bench {i}"),
            "password": password,
            "verification_token": verification_token,
        }),
    )
    .await?;
    let id = field(&registered, "id", "register")?;
    let logged_in = call(
        conn,
        "/user/login",
        json!({"region": 86, "phone": phone, "password": password}),
    )
    .await?;
    let token = field(&logged_in, "token", "login")?;
    Ok(User {
        id,
        token,
        phone,
        password,
    })
}

/// Creates the users and writes the users file.
pub async fn seed(args: SeedArgs) -> Result<(), BoxError> {
    let (url, outbox) = match (&args.db, &args.url, &args.outbox) {
        (Some(db), _, _) => {
            return crate::bulk::seed(
                db,
                args.users as u64,
                &args.bulk,
                args.first_phone,
                &args.out,
            )
            .await
        }
        (None, Some(url), Some(outbox)) => (url.clone(), outbox.clone()),
        _ => return Err("seed needs --db URL, or --url and --outbox".into()),
    };
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    let target = Arc::new(Target::parse(&url)?);
    let outbox = Arc::new(Outbox::new(outbox));
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.min(args.users.max(1)) {
        let (target, outbox, next, done) =
            (target.clone(), outbox.clone(), next.clone(), done.clone());
        let (total, first_phone) = (args.users, args.first_phone);
        workers.push(tokio::spawn(async move {
            let mut conn = Conn::new(target);
            let mut made = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let user = seed_one(&mut conn, &outbox, i, first_phone + i as u64)
                    .await
                    .map_err(|e| format!("user {i} (phone {}): {e}", first_phone + i as u64))?;
                made.push((i, user));
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n % 50 == 0 || n == total {
                    eprintln!("seeded {n}/{total}");
                }
            }
            Ok::<_, BoxError>(made)
        }));
    }
    let mut all = Vec::with_capacity(args.users);
    for worker in workers {
        all.extend(worker.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    let all: Vec<User> = all.into_iter().map(|(_, u)| u).collect();
    users::save(&args.out, &all)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "seeded {} users in {secs:.1} s ({:.1}/s) into {}",
        all.len(),
        all.len() as f64 / secs.max(f64::EPSILON),
        args.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::io::Write;

    #[test]
    fn passwords_fit_the_rules() {
        for i in [0, 7, 123_456, 99_999_999] {
            let p = password_for(i);
            assert!((6..=20).contains(&p.len()), "{p}");
        }
    }

    #[test]
    fn the_outbox_is_read_incrementally_and_keeps_the_latest_code() {
        let dir = std::env::temp_dir().join(format!("kith-bench-outbox-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("outbox.jsonl");
        let mut f = std::fs::File::create(&path).unwrap();
        let line = |code: &str, at: i64| {
            format!(
                r#"{{"region":"86","phone":"+8613900000000","code":"{code}","purpose":"register","sent_at":{at}}}"#
            )
        };
        writeln!(f, "{}", line("111111", 1)).unwrap();
        write!(f, "{}", &line("222222", 2)[..20]).unwrap();
        f.flush().unwrap();
        let mut state = OutboxState::default();
        state.catch_up(&path).unwrap();
        assert_eq!(state.latest["+8613900000000"], ("111111".into(), 1));
        writeln!(f, "{}", &line("222222", 2)[20..]).unwrap();
        f.flush().unwrap();
        state.catch_up(&path).unwrap();
        assert_eq!(state.latest["+8613900000000"], ("222222".into(), 2));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
