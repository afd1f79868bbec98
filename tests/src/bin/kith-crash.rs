//! `kith-crash`: kills the real `kith` with SIGKILL under a concurrent write load, again and again, and checks what survives.
//!
//! For each backend, every round: start `kith` on the round's database (the same one each round),
//! sign up a few users, run a write load from several threads (SealTalk invite/agree, 001
//! follows and blocks, 002 contacts), `kill -9` the server at a random moment, run `kith check`
//! (the store's invariant checker) on the database as the crash left it, then restart and verify
//! that every write acknowledged with a success before the kill is there.
//!
//! ```text
//! cargo build -p kith-server -p kith-e2e --bins
//! $CARGO_TARGET_DIR/debug/kith-crash [--backend sqlite|postgres|both] [--rounds 20] [--seed N]
//! ```
//! `--sabotage` undoes three acknowledged writes through the API after the second restart; the
//! run must then fail with them reported missing.
//! `KITH_BIN` names the `kith` binary (default: the one beside this program). Exits non-zero if
//! a check finds a violation, an acknowledged write is missing, or Kith fails to restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kith_e2e::{Backend, Kith, TestDb};
use serde_json::{json, Value};

/// Load threads.
const THREADS: usize = 6;
/// New users per round.
const USERS_PER_ROUND: usize = 6;
/// Pair jobs per round, by kind.
const FRIEND_PAIRS: usize = 40;
const FOLLOW_PAIRS: usize = 40;
const BLOCK_PAIRS: usize = 15;
/// The kill comes this long after the load starts, uniformly.
const KILL_AFTER_MS: (u64, u64) = (150, 2500);
const PASSWORD: &str = "crash-test-pw";

/// A small deterministic generator (xorshift64*), so a seed replays a schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = usize::try_from(self.below(i as u64 + 1)).unwrap();
            v.swap(i, j);
        }
    }
}

#[derive(Debug, Clone)]
struct User {
    id: i64,
    token: String,
}

/// A write the server acknowledged with a success.
#[derive(Debug, Clone)]
enum Ack {
    /// `a` invited `b` and got "Sent": afterwards a request or (if the agree landed) friends.
    Request(usize, usize),
    /// `a` and `b` are friends (agree answered 200, or the invite befriended at once).
    Friends(usize, usize),
    /// `a` follows `b`.
    Follow(usize, usize),
    /// `a` blocks `b`.
    Block(usize, usize),
    /// `owner` has contact `id`.
    Contact(usize, String),
}

#[derive(Debug, Clone, Copy)]
enum Job {
    Friend(usize, usize),
    Follow(usize, usize),
    Block(usize, usize),
}

/// A plain HTTP client that reports failures instead of panicking: the server dies under it.
struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Self {
            agent,
            base: base.to_owned(),
        }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: &str,
    ) -> Result<(u16, Value), String> {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {token}"));
        let res = match body {
            Some(b) => self.agent.run(
                req.header("Content-Type", "application/json")
                    .body(b.to_string())
                    .unwrap(),
            ),
            None => self.agent.run(req.body(()).unwrap()),
        }
        .map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let text = res
            .into_body()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

/// Counters shared by the load threads.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    refused: AtomicU64,
    cut: AtomicU64,
}

/// Whether a SealTalk answer is a success: HTTP 200 and `code` 200.
fn sealtalk_ok(r: &(u16, Value)) -> bool {
    r.0 == 200 && r.1["code"] == 200
}

/// One thread's share of the load: pair jobs from the queue, then contacts, until the server dies.
fn worker(
    client: &Client,
    users: &[User],
    jobs: &Mutex<VecDeque<Job>>,
    acks: &Mutex<Vec<Ack>>,
    tally: &Tally,
    stop: &AtomicBool,
    seed: u64,
) {
    let mut rng = Rng(seed | 1);
    let mut n = 0u64;
    let ack = |a: Ack| acks.lock().unwrap().push(a);
    // Every request goes through here: a transport error means the server is gone.
    let call = |method: &str, path: &str, body: Value, who: usize| {
        tally.sent.fetch_add(1, Ordering::Relaxed);
        let r = client.send(method, path, Some(body), &users[who].token);
        match &r {
            Err(_) => {
                tally.cut.fetch_add(1, Ordering::Relaxed);
            }
            Ok((s, _)) if !(200..300).contains(s) => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
        }
        r
    };
    while !stop.load(Ordering::Relaxed) {
        // Contacts and pair jobs interleave, so the kill can land in either kind of write.
        let job = if rng.below(2) == 0 {
            jobs.lock().unwrap().pop_front()
        } else {
            None
        };
        let alive = match job {
            Some(Job::Friend(a, b)) => {
                let r = call(
                    "POST",
                    "/friendship/invite",
                    json!({"friendId": users[b].id.to_string(), "message": "crash"}),
                    a,
                );
                match r {
                    Err(_) => false,
                    Ok(r) if sealtalk_ok(&r) => match r.1["result"]["action"].as_str() {
                        Some("Sent") => {
                            ack(Ack::Request(a, b));
                            let r = call(
                                "POST",
                                "/friendship/agree",
                                json!({"friendId": users[a].id.to_string()}),
                                b,
                            );
                            match r {
                                Err(_) => false,
                                Ok(r) => {
                                    if sealtalk_ok(&r) {
                                        ack(Ack::Friends(a, b));
                                    }
                                    true
                                }
                            }
                        }
                        Some("AddDirectly" | "Added") => {
                            ack(Ack::Friends(a, b));
                            true
                        }
                        _ => true,
                    },
                    Ok(_) => true,
                }
            }
            Some(Job::Follow(a, b)) => {
                match call("POST", "/follows", json!({"followee_id": users[b].id}), a) {
                    Err(_) => false,
                    Ok((201, _)) => {
                        ack(Ack::Follow(a, b));
                        true
                    }
                    Ok(_) => true,
                }
            }
            Some(Job::Block(a, b)) => {
                match call("POST", "/blocks", json!({"user_id": users[b].id}), a) {
                    Err(_) => false,
                    Ok((201, _)) => {
                        ack(Ack::Block(a, b));
                        true
                    }
                    Ok(_) => true,
                }
            }
            None => {
                let owner = usize::try_from(rng.below(users.len() as u64)).unwrap();
                n += 1;
                let body = json!({
                    "name": format!("Crash {seed:x} {n}"),
                    "numbers": [{"type": "Home", "number": format!("+86 138 {:04} {:04}", n % 10_000, rng.below(10_000))}],
                    "emails": [{"type": "Work", "email": format!("c{n}{}example.com", '@')}],
                });
                match call("POST", "/api/v2/contact", body, owner) {
                    Err(_) => false,
                    Ok((s, body)) if (200..300).contains(&s) => {
                        match body["id"].as_str() {
                            Some(id) => ack(Ack::Contact(owner, id.to_owned())),
                            None => panic!("a contact created without an id: {body}"),
                        }
                        true
                    }
                    Ok(_) => true,
                }
            }
        };
        if !alive {
            return;
        }
    }
}

/// Every acknowledged write that is not there, as text.
fn verify(kith: &Kith, users: &[User], acks: &[Ack]) -> Vec<String> {
    let client = Client::new(&kith.base);
    // A read that times out (the machine starved) is asked again: a missing write answers 404 or
    // a status, never a timeout, so retrying cannot hide one.
    let get = |path: &str, token: &str| -> (u16, Value) {
        let mut last = String::new();
        for _ in 0..4 {
            match client.send("GET", path, None, token) {
                Ok(r) => return r,
                Err(e) => {
                    eprintln!("verify: GET {path} failed ({e}), asking again");
                    last = e;
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        panic!("GET {path} failed 4 times, last: {last}");
    };
    let mut missing = Vec::new();
    // SealTalk friend-list statuses, per user, read once each.
    let mut statuses: HashMap<usize, HashMap<String, i64>> = HashMap::new();
    let mut status = |a: usize, b: usize| -> Option<i64> {
        let list = statuses.entry(a).or_insert_with(|| {
            let (s, body) = get("/friendship/all", &users[a].token);
            assert_eq!(s, 200, "friendship/all: {body}");
            body["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["user"]["id"].as_str().unwrap_or_default().to_owned(),
                        r["status"].as_i64().unwrap_or(-1),
                    )
                })
                .collect()
        });
        list.get(&users[b].id.to_string()).copied()
    };
    let v1 = |a: usize, b: usize| -> Value {
        let (s, body) = get(&format!("/api/v1/contact/{}", users[b].id), &users[a].token);
        assert_eq!(s, 200, "v1 contact: {body}");
        body
    };
    for ack in acks {
        let ok = match ack {
            Ack::Request(a, b) => matches!(status(*a, *b), Some(10 | 20)),
            Ack::Friends(a, b) => status(*a, *b) == Some(20) && status(*b, *a) == Some(20),
            Ack::Follow(a, b) => v1(*a, *b)["is_following"] == true,
            Ack::Block(a, b) => v1(*a, *b)["is_blocked"] == true,
            Ack::Contact(owner, id) => {
                get(&format!("/api/v2/contact/{id}"), &users[*owner].token).0 == 200
            }
        };
        if !ok {
            missing.push(format!("{ack:?}"));
        }
    }
    missing
}

/// `--sabotage`: undoes one acknowledged contact, follow and friendship through the API before
/// the verification, which must then report them missing (shows the verification can fail).
fn undo_some(kith: &Kith, users: &[User], acks: &[Ack]) {
    let client = Client::new(&kith.base);
    let mut done = [false; 3];
    for ack in acks {
        let (slot, method, path, body, who) = match ack {
            Ack::Contact(o, id) => (0, "DELETE", format!("/api/v2/contact/{id}"), None, *o),
            Ack::Follow(a, b) => (1, "DELETE", format!("/follows/{}", users[*b].id), None, *a),
            Ack::Friends(a, b) => (
                2,
                "POST",
                "/friendship/delete".to_owned(),
                Some(json!({"friendId": users[*b].id.to_string()})),
                *a,
            ),
            _ => continue,
        };
        if !done[slot] {
            let r = client.send(method, &path, body, &users[who].token).unwrap();
            assert!((200..300).contains(&r.0), "sabotage {path}: {:?}", r);
            println!("sabotage: undid {ack:?}");
            done[slot] = true;
        }
    }
}

/// `kith check` on the database: (clean, its output).
fn run_check(db: &TestDb) -> (bool, String) {
    let out = Command::new(kith_bin())
        .arg("check")
        .env("KITH_DATABASE_URL", &db.url)
        .env("KITH_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn kith_bin() -> PathBuf {
    std::env::var_os("KITH_BIN").map_or_else(
        || {
            std::env::current_exe()
                .unwrap()
                .with_file_name(format!("kith{}", std::env::consts::EXE_SUFFIX))
        },
        PathBuf::from,
    )
}

/// What one backend's run found.
#[derive(Debug, Default)]
struct Outcome {
    rounds: usize,
    requests: u64,
    refused: u64,
    cut: u64,
    acks: usize,
    acks_by_kind: [usize; 5],
    /// Acknowledged writes looked up after a restart, summed over restarts (each restart looks
    /// at every write acknowledged before any earlier kill).
    lookups: usize,
    missing: BTreeSet<String>,
    violations: Vec<String>,
    check_rows: String,
}

fn server_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("KITH_CAPTCHA_AFTER", "off"),
        ("KITH_SMS_PER_IP_HOURLY", "1000000"),
        ("KITH_SMS_GLOBAL_HOURLY", "1000000"),
        // Compaction runs during the load, so floors move while the server dies.
        ("KITH_SYNC_HORIZON_SECS", "1"),
        ("KITH_SYNC_COMPACT_EVERY_SECS", "1"),
    ]
}

fn run_backend(backend: Backend, rounds: usize, rng: &mut Rng, sabotage: bool) -> Option<Outcome> {
    let db = TestDb::new(backend)?;
    let env = server_env();
    let mut out = Outcome::default();
    let mut users: Vec<User> = Vec::new();
    let mut acks: Vec<Ack> = Vec::new();
    let mut used: HashSet<(usize, usize)> = HashSet::new();
    let phone_base: u64 = match backend {
        Backend::Sqlite => 13_910_000_000,
        Backend::Postgres => 13_920_000_000,
    } + (rng.below(900) * 1000);
    for round in 1..=rounds {
        let started = Instant::now();
        let kith = Kith::start(&db, &env);
        // What earlier rounds were told must have survived their crash.
        if sabotage && round == 2 {
            undo_some(&kith, &users, &acks);
        }
        out.lookups += acks.len();
        out.missing.extend(verify(&kith, &users, &acks));

        for _ in 0..USERS_PER_ROUND {
            let national = (phone_base + users.len() as u64).to_string();
            let (id, token) = kith.sign_up(&national, &format!("u{}", users.len()), PASSWORD);
            users.push(User {
                id: id.parse().unwrap(),
                token,
            });
        }
        let mut jobs = Vec::new();
        let mut candidates: Vec<(usize, usize)> = (0..users.len())
            .flat_map(|a| (a + 1..users.len()).map(move |b| (a, b)))
            .filter(|p| !used.contains(p))
            .collect();
        rng.shuffle(&mut candidates);
        for (k, &(a, b)) in candidates
            .iter()
            .take(FRIEND_PAIRS + FOLLOW_PAIRS + BLOCK_PAIRS)
            .enumerate()
        {
            used.insert((a, b));
            let (a, b) = if rng.below(2) == 0 { (a, b) } else { (b, a) };
            jobs.push(if k < FRIEND_PAIRS {
                Job::Friend(a, b)
            } else if k < FRIEND_PAIRS + FOLLOW_PAIRS {
                Job::Follow(a, b)
            } else {
                Job::Block(a, b)
            });
        }
        rng.shuffle(&mut jobs);

        let jobs = Mutex::new(VecDeque::from(jobs));
        let new_acks = Mutex::new(Vec::new());
        let tally = Tally::default();
        let stop = AtomicBool::new(false);
        let client = Arc::new(Client::new(&kith.base));
        let kill_after = KILL_AFTER_MS.0 + rng.below(KILL_AFTER_MS.1 - KILL_AFTER_MS.0);
        let seeds: Vec<u64> = (0..THREADS).map(|_| rng.next()).collect();
        std::thread::scope(|s| {
            for seed in seeds {
                let (client, users, jobs, acks, tally, stop) =
                    (&client, &users, &jobs, &new_acks, &tally, &stop);
                s.spawn(move || worker(client, users, jobs, acks, tally, stop, seed));
            }
            std::thread::sleep(Duration::from_millis(kill_after));
            let killed = Command::new("kill")
                .args(["-9", &kith.pid().to_string()])
                .status()
                .unwrap();
            assert!(killed.success(), "kill -9 failed");
            // Reaps the process; the workers see refused connections and stop.
            drop(kith);
            stop.store(true, Ordering::Relaxed);
        });
        let new_acks = new_acks.into_inner().unwrap();
        out.requests += tally.sent.load(Ordering::Relaxed);
        out.refused += tally.refused.load(Ordering::Relaxed);
        out.cut += tally.cut.load(Ordering::Relaxed);
        for a in &new_acks {
            out.acks_by_kind[match a {
                Ack::Request(..) => 0,
                Ack::Friends(..) => 1,
                Ack::Follow(..) => 2,
                Ack::Block(..) => 3,
                Ack::Contact(..) => 4,
            }] += 1;
        }
        out.acks += new_acks.len();
        acks.extend(new_acks);

        let (clean, report) = run_check(&db);
        if !clean {
            out.violations
                .push(format!("round {round}: kith check failed:\n{report}"));
        }
        out.check_rows = report.lines().next().unwrap_or_default().to_owned();
        out.rounds = round;
        println!(
            "{backend:?} round {round:>2}: killed after {kill_after:>4} ms, {} acknowledged so far, \
             check {}, {} missing so far ({:.1} s)",
            acks.len(),
            if clean { "clean" } else { "FAILED" },
            out.missing.len(),
            started.elapsed().as_secs_f64()
        );
    }
    // The last crash's writes: restart once more and look.
    let kith = Kith::start(&db, &env);
    out.lookups += acks.len();
    out.missing.extend(verify(&kith, &users, &acks));
    kith.terminate();
    Some(out)
}

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let mut backends = vec![Backend::Sqlite, Backend::Postgres];
    let mut rounds = 20;
    let mut sabotage = false;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    while let Some(arg) = args.next() {
        if arg == "--sabotage" {
            sabotage = true;
            continue;
        }
        let value = args.next().unwrap_or_default();
        match arg.as_str() {
            "--backend" => {
                backends = match value.as_str() {
                    "sqlite" => vec![Backend::Sqlite],
                    "postgres" => vec![Backend::Postgres],
                    "both" => vec![Backend::Sqlite, Backend::Postgres],
                    other => panic!("unknown backend {other}"),
                }
            }
            "--rounds" => rounds = value.parse().unwrap(),
            "--seed" => seed = value.parse().unwrap(),
            other => panic!("unknown argument {other}; see the module docs"),
        }
    }
    // The harness's `Kith::start` looks beside the test executables unless told.
    std::env::set_var("KITH_BIN", kith_bin());
    println!(
        "kith-crash: seed {seed}, {rounds} rounds, kith at {}",
        kith_bin().display()
    );
    let mut rng = Rng(seed | 1);
    let mut failed = false;
    for backend in backends {
        let started = Instant::now();
        let Some(out) = run_backend(backend, rounds, &mut rng, sabotage) else {
            failed = true;
            continue;
        };
        let [req, fr, fo, bl, co] = out.acks_by_kind;
        println!(
            "{backend:?}: {} rounds survived in {:.0} s; {} requests ({} non-2xx, {} cut by the kill); \
             {} writes acknowledged (invites {req}, friendships {fr}, follows {fo}, blocks {bl}, \
             contacts {co}), {} present after every later restart ({} lookups), {} missing; \
             {} check violation(s); last check: {}",
            out.rounds,
            started.elapsed().as_secs_f64(),
            out.requests,
            out.refused,
            out.cut,
            out.acks,
            out.acks - out.missing.len(),
            out.lookups,
            out.missing.len(),
            out.violations.len(),
            out.check_rows,
        );
        for m in &out.missing {
            println!("  MISSING {m}");
        }
        for v in &out.violations {
            println!("  {v}");
        }
        failed |= !out.missing.is_empty() || !out.violations.is_empty();
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
