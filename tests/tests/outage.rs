//! Database outage (issue 7): Kith runs on PostgreSQL through a TCP proxy whose link is cut, then
//! blackholed, while requests keep coming. Kith must answer 503 within its configured timeouts,
//! never 500, never crash, report 503 on /health, and recover by itself within 5 seconds of the
//! link coming back. PostgreSQL only: SQLite has no link to lose. The one success allowed in an
//! outage is a public profile read just before it, shown from the profile cache for at most
//! `KITH_PROFILE_CACHE_SECS` (1 s here) after the link failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kith_e2e::proxy::{Link, Proxy};
use kith_e2e::{Answer, Backend, Kith, TestDb};
use serde_json::json;

/// `KITH_DB_TIMEOUT_MS` and `KITH_DB_QUERY_TIMEOUT_MS` for this test.
const DB_TIMEOUT_MS: u64 = 1000;
const QUERY_TIMEOUT_MS: u64 = 1000;
/// Scheduling slack on a busy 2-CPU machine.
const MARGIN_MS: u64 = 1000;
/// The slowest answer allowed while the database is unreachable.
const BOUND: Duration = Duration::from_millis(DB_TIMEOUT_MS + QUERY_TIMEOUT_MS + MARGIN_MS);
/// What the issue asks for.
const RECOVERY_LIMIT: Duration = Duration::from_secs(5);
const LOAD_THREADS: usize = 8;
/// `KITH_PROFILE_CACHE_SECS` for this test: a public profile read before the link failed may
/// still be shown, from memory, until this long after it failed; never later.
const PROFILE_CACHE: Duration = Duration::from_secs(1);
/// The cache's clock counts whole milliseconds; the test's does not.
const CLOCK_SLACK: Duration = Duration::from_millis(20);

/// One answered request.
#[derive(Debug, Clone)]
struct Sample {
    start: Instant,
    took: Duration,
    path: &'static str,
    status: u16,
    ok_body: bool,
    body: String,
}

/// The host:port of a `postgres://user@host:port/db` URL, and the URL with it replaced.
fn through(url: &str, proxy: SocketAddr) -> (SocketAddr, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (user, hostport) = match authority.rfind('@') {
        Some(i) => (&authority[..=i], &authority[i + 1..]),
        None => ("", authority),
    };
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    let upstream = hostport.to_socket_addrs().unwrap().next().unwrap();
    (upstream, format!("{scheme}://{user}{proxy}{path}"))
}

/// Whether an answer is a success in its API's terms.
fn success(path: &str, a: &Answer) -> bool {
    if path.starts_with("/user") {
        a.status == 200 && a.code() == 200
    } else {
        (200..300).contains(&a.status)
    }
}

/// Whether a 503 is in its API's envelope.
fn unavailable_envelope(path: &str, a: &Answer) -> bool {
    if path.starts_with("/user") {
        a.code() == 503
    } else {
        a.body["error"]["code"] == "unavailable"
    }
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// Polls /health and one API call until both succeed; the time that took.
fn wait_recovery(kith: &Kith, id: &str, token: &str) -> Duration {
    let t0 = Instant::now();
    loop {
        let health = kith.get("/health", None);
        if health.status == 200 {
            let a = kith.get(&format!("/user/{id}"), Some(token));
            if success("/user", &a) {
                return t0.elapsed();
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "Kith did not recover within 30 s: /health {}",
            health.status
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `s` is a public profile served from the profile cache within `PROFILE_CACHE` of the
/// link failing at `from`: the one success an outage allows.
fn cached_profile(s: &Sample, from: Instant) -> bool {
    s.path.starts_with("/user/")
        && s.path != "/user/set_nickname"
        && s.status == 200
        && s.ok_body
        && s.start + s.took <= from + PROFILE_CACHE + CLOCK_SLACK
}

/// Checks the answers of an outage window and prints its figures.
fn check_outage(what: &str, samples: &[Sample], from: Instant, until: Instant) {
    // Every request sent after the link failed and answered before it came back.
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.start >= from && s.start + s.took <= until)
        .collect();
    assert!(
        during.len() >= LOAD_THREADS,
        "{what}: too few requests ({})",
        during.len()
    );
    let cached = during.iter().filter(|s| cached_profile(s, from)).count();
    let during: Vec<&Sample> = during
        .into_iter()
        .filter(|s| !cached_profile(s, from))
        .collect();
    for s in &during {
        assert_eq!(
            s.status, 503,
            "{what}: {} answered {} during the outage: {}",
            s.path, s.status, s.body
        );
        assert!(
            s.ok_body,
            "{what}: 503 outside its envelope on {}: {}",
            s.path, s.body
        );
        assert!(
            s.took <= BOUND,
            "{what}: {} took {:?}, more than the {BOUND:?} bound",
            s.path,
            s.took
        );
    }
    let took: Vec<Duration> = during.iter().map(|s| s.took).collect();
    println!(
        "{what}: {} requests, all 503 but {cached} profiles shown from memory in the first \
         {PROFILE_CACHE:?}; latency p50 {:?}, p99 {:?}, max {:?} (bound {BOUND:?})",
        during.len(),
        percentile(took.clone(), 0.5),
        percentile(took.clone(), 0.99),
        took.iter().max().unwrap()
    );
}

#[test]
fn postgres_outage_answers_503_quickly_and_recovers() {
    let Some(mut db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    assert_eq!(db.backend, Backend::Postgres);
    let placeholder: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let (upstream, _) = through(&db.url, placeholder);
    let proxy = Proxy::start(upstream).unwrap();
    let (_, proxied) = through(&db.url, proxy.addr());
    db.url = proxied;
    let kith = Kith::start(
        &db,
        &[
            ("KITH_DB_TIMEOUT_MS", &DB_TIMEOUT_MS.to_string()),
            ("KITH_DB_QUERY_TIMEOUT_MS", &QUERY_TIMEOUT_MS.to_string()),
            (
                "KITH_PROFILE_CACHE_SECS",
                &PROFILE_CACHE.as_secs().to_string(),
            ),
            ("KITH_LOG", "warn"),
        ],
    );
    let pid = kith.pid();
    let (id, token) = kith.sign_up("13900000071", "Outage", "Horse-battery-9");
    let profile: &'static str = Box::leak(format!("/user/{id}").into_boxed_str());

    let samples = Mutex::new(Vec::<Sample>::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for t in 0..LOAD_THREADS {
            let (kith, samples, stop, token) = (&kith, &samples, &stop, &token);
            scope.spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let start = Instant::now();
                    let (path, a) = match i % 3 {
                        0 => ("/friends", kith.get("/friends", Some(token))),
                        1 => (
                            "/user/set_nickname",
                            kith.post(
                                "/user/set_nickname",
                                json!({"nickname": format!("n{i}")}),
                                Some(token),
                            ),
                        ),
                        _ => (profile, kith.get(profile, Some(token))),
                    };
                    let took = start.elapsed();
                    let ok_body = if a.status == 503 {
                        unavailable_envelope(path, &a)
                    } else {
                        success(path, &a)
                    };
                    samples.lock().unwrap().push(Sample {
                        start,
                        took,
                        path,
                        status: a.status,
                        ok_body,
                        body: a.text,
                    });
                    // A little breathing room so that the 2 CPUs also serve the checks below.
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
        }

        // Healthy under load.
        std::thread::sleep(Duration::from_secs(2));

        // 1. Cut: connections closed, new ones refused.
        let cut_at = Instant::now();
        proxy.set(Link::Cut);
        std::thread::sleep(Duration::from_millis(500));
        let health = kith.get("/health", None);
        assert_eq!(
            health.status, 503,
            "/health during the cut: {}",
            health.text
        );
        std::thread::sleep(Duration::from_millis(3500));
        let cut_end = Instant::now();
        proxy.set(Link::Up);
        let cut_recovery = wait_recovery(&kith, &id, &token);
        let cut_recovered = Instant::now();
        println!("cut: recovered {cut_recovery:?} after the link came back");

        // Healthy again.
        std::thread::sleep(Duration::from_secs(2));

        // 2. Blackhole: connections stay open but nothing flows.
        let hole_at = Instant::now();
        proxy.set(Link::Blackhole);
        std::thread::sleep(Duration::from_millis(500));
        let t = Instant::now();
        let health = kith.get("/health", None);
        assert_eq!(
            health.status, 503,
            "/health in the blackhole: {}",
            health.text
        );
        assert!(t.elapsed() <= BOUND, "/health took {:?}", t.elapsed());
        std::thread::sleep(Duration::from_millis(4500));
        let hole_end = Instant::now();
        proxy.set(Link::Up);
        let hole_recovery = wait_recovery(&kith, &id, &token);
        let hole_recovered = Instant::now();
        println!("blackhole: recovered {hole_recovery:?} after the link came back");

        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::SeqCst);
        let end = Instant::now();

        let samples = samples.lock().unwrap().clone();
        // Before the first cut, every call succeeded.
        let before: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.start + s.took < cut_at)
            .collect();
        assert!(!before.is_empty());
        for s in &before {
            assert!(
                s.ok_body && s.status < 300,
                "healthy: {} {} {}",
                s.path,
                s.status,
                s.body
            );
        }
        check_outage("cut", &samples, cut_at, cut_end);
        check_outage("blackhole", &samples, hole_at, hole_end);
        // No 5xx but 503, ever; and once recovered, calls sent succeed.
        for s in &samples {
            assert!(
                s.status < 500 || s.status == 503,
                "{} answered {}: {}",
                s.path,
                s.status,
                s.body
            );
        }
        for (what, from, until) in [
            ("after the cut", cut_recovered, hole_at),
            ("after the blackhole", hole_recovered, end),
        ] {
            let after: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.start >= from && s.start + s.took < until)
                .collect();
            assert!(!after.is_empty(), "{what}: no requests");
            for s in &after {
                assert!(
                    s.ok_body && s.status < 300,
                    "{what}: {} sent {:?} after recovery answered {} in {:?}: {}",
                    s.path,
                    s.start - from,
                    s.status,
                    s.took,
                    s.body
                );
            }
            println!("{what}: {} requests, all 2xx", after.len());
        }
        assert!(
            cut_recovery <= RECOVERY_LIMIT,
            "recovery after the cut took {cut_recovery:?}"
        );
        assert!(
            hole_recovery <= RECOVERY_LIMIT,
            "recovery after the blackhole took {hole_recovery:?}"
        );
    });
    // Same process throughout: it never restarted or died.
    assert_eq!(kith.pid(), pid);
    assert_eq!(kith.get("/health", None).status, 200);
    let status = kith.terminate();
    assert!(status.success(), "kith exited with {status}");
}
