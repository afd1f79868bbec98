//! `kith-bench run`: C keep-alive connections each sending requests back to back for a fixed time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use hdrhistogram::Histogram;
use hyper::body::Bytes;
use hyper::StatusCode;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::http::{Conn, Req, Target};
use crate::scenario::{Fixture, Judged, Scenario};
use crate::users::{self, User};
use crate::{cpu, rss, BoxError};
use crate::{relationships, social};

/// Latencies are recorded in microseconds, up to a minute, to three significant digits.
const MAX_LATENCY_US: u64 = 60_000_000;
/// After a connection failure, wait this long so a dead server is not hammered in a tight loop.
const FAILURE_PAUSE: Duration = Duration::from_millis(10);
/// Distinct failure kinds kept per connection; the rest are folded into one bucket.
const MAX_KINDS: usize = 32;

/// Arguments of `kith-bench run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// The workload.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// The server's process id, to report its resident memory.
    #[arg(long)]
    pid: Option<u32>,
    /// The users file written by `kith-bench seed` (needed by profile and login).
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// A label copied into the report, e.g. the database.
    #[arg(long, default_value = "")]
    label: String,
}

/// What one connection saw in the measured window.
#[derive(Debug)]
struct Tally {
    latency_us: Histogram<u64>,
    errors: u64,
    kinds: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Result<Self, BoxError> {
        Ok(Self {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
            errors: 0,
            kinds: BTreeMap::new(),
        })
    }

    fn fail(&mut self, kind: String) {
        self.errors += 1;
        let kind = if self.kinds.len() >= MAX_KINDS && !self.kinds.contains_key(&kind) {
            "other".to_owned()
        } else {
            kind
        };
        *self.kinds.entry(kind).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) -> Result<(), BoxError> {
        self.latency_us.add(&other.latency_us)?;
        self.errors += other.errors;
        for (kind, n) in other.kinds {
            *self.kinds.entry(kind).or_default() += n;
        }
        Ok(())
    }
}

/// The figures of one run, as printed in the JSON line.
#[derive(Debug, Serialize)]
struct Report {
    scenario: &'static str,
    label: String,
    connections: usize,
    duration_s: f64,
    warmup_s: f64,
    /// Successful responses completed in the measured window.
    ok: u64,
    /// `ok` per measured second; failures are not in it.
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
    /// Largest VmRSS sampled during the run, MiB.
    peak_rss_mb: Option<f64>,
    /// VmHWM at the end (whole server life), MiB.
    vmhwm_mb: Option<f64>,
    /// Cores used in the measured window, to judge how shared the machine was.
    cpu: cpu::Usage,
    /// The server's CPU time per successful request, µs (from `cpu`).
    server_cpu_us_per_req: Option<f64>,
    /// The server's context switches per successful request (from `cpu`): a thread hand-off
    /// costs one or two, and on a virtual machine they are a large share of the server's CPU.
    server_switches_per_req: Option<f64>,
    /// invite-accept: pairs whose agree succeeded in the measured window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pairs: Option<u64>,
    /// invite-accept: `pairs` per measured second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pairs_per_s: Option<f64>,
    /// invite-accept: the fresh pairs ran out, so the window ended early (`duration_s` is the
    /// part actually measured).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ran_out_of_pairs: bool,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0)
}

/// Loops steps on one connection until `end`; requests completing at or after `measure_from`
/// count, and one still in flight at `end` is abandoned uncounted. A step of two requests
/// (follow then unfollow, invite then agree) sends the second only if the first passed.
async fn drive(
    scenario: Scenario,
    fx: Arc<Fixture>,
    target: Arc<Target>,
    first: usize,
    measure_from: Instant,
    end: Instant,
) -> Result<Tally, BoxError> {
    let mut tally = Tally::new()?;
    let mut conn = Conn::new(target);
    let mut judged = Judged::default();
    let mut n = first;
    'steps: while Instant::now() < end {
        let steps = scenario.steps(&fx, n);
        n = n.wrapping_add(1);
        for (req, kind) in steps {
            let started = Instant::now();
            let outcome = tokio::select! {
                r = conn.send(&req) => r,
                _ = tokio::time::sleep_until(end) => break 'steps,
            };
            let done = Instant::now();
            let elapsed = done - started;
            let verdict = match outcome {
                Ok((status, body)) => judged.judge(kind, status, &body),
                Err(e) => {
                    tokio::time::sleep(FAILURE_PAUSE).await;
                    Err(format!("transport: {e}"))
                }
            };
            let passed = verdict.is_ok();
            // Completions are what a closed loop measures: a slow request (a login at bcrypt
            // cost 12 under 16 connections takes seconds) still counts if it ends inside the
            // window.
            if done >= measure_from {
                match verdict {
                    Ok(()) => {
                        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
                        tally.latency_us.saturating_record(us.max(1));
                    }
                    Err(kind) if scenario == Scenario::Mixed => tally.fail(format!(
                        "{} {}: {kind}",
                        req.method,
                        req.path.split('?').next().unwrap_or_default()
                    )),
                    Err(kind) => tally.fail(kind),
                }
            }
            if !passed {
                continue 'steps;
            }
        }
    }
    Ok(tally)
}

/// What one invite-accept connection saw: its tally, its completed pairs, and when it found no
/// fresh pair left (if it did).
type PairsSeen = (Tally, u64, Option<Instant>);

/// Sends one request of a pair and records it like `drive` does; `None` when `end` came first,
/// else whether the answer passed `judge`.
async fn step(
    conn: &mut Conn,
    req: &Req,
    what: &str,
    judge: fn(StatusCode, &Bytes) -> Result<(), String>,
    measure_from: Instant,
    end: Instant,
    tally: &mut Tally,
) -> Option<bool> {
    let started = Instant::now();
    let outcome = tokio::select! {
        r = conn.send(req) => r,
        _ = tokio::time::sleep_until(end) => return None,
    };
    let done = Instant::now();
    let verdict = match outcome {
        Ok((status, body)) => judge(status, &body).map_err(|e| format!("{what}: {e}")),
        Err(e) => {
            tokio::time::sleep(FAILURE_PAUSE).await;
            Err(format!("{what}: transport: {e}"))
        }
    };
    let passed = verdict.is_ok();
    if done >= measure_from {
        match verdict {
            Ok(()) => {
                let us = u64::try_from((done - started).as_micros()).unwrap_or(u64::MAX);
                tally.latency_us.saturating_record(us.max(1));
            }
            Err(kind) => tally.fail(kind),
        }
    }
    Some(passed)
}

/// invite-accept on one connection: takes the next never-used pair from the shared list,
/// invites as its first user and agrees as its second, until `end` or until the pairs run out.
/// A failed invite skips its agree.
async fn drive_pairs(
    users: Arc<Vec<User>>,
    pairs: Arc<Vec<(usize, usize)>>,
    next: Arc<AtomicUsize>,
    target: Arc<Target>,
    measure_from: Instant,
    end: Instant,
) -> Result<PairsSeen, BoxError> {
    let mut tally = Tally::new()?;
    let mut done_pairs = 0;
    let mut conn = Conn::new(target);
    while Instant::now() < end {
        let Some(&(i, j)) = pairs.get(next.fetch_add(1, Ordering::Relaxed)) else {
            return Ok((tally, done_pairs, Some(Instant::now())));
        };
        let (from, to) = (&users[i], &users[j]);
        let invite = relationships::invite_request(from, to);
        let judge = relationships::judge_invite;
        match step(
            &mut conn,
            &invite,
            "invite",
            judge,
            measure_from,
            end,
            &mut tally,
        )
        .await
        {
            None => break,
            Some(false) => continue,
            Some(true) => {}
        }
        let agree = relationships::agree_request(to, from);
        let judge = relationships::judge_agree;
        match step(
            &mut conn,
            &agree,
            "agree",
            judge,
            measure_from,
            end,
            &mut tally,
        )
        .await
        {
            None => break,
            Some(true) if Instant::now() >= measure_from => done_pairs += 1,
            Some(_) => {}
        }
    }
    Ok((tally, done_pairs, None))
}

fn seconds(flag: &str, secs: f64) -> Result<Duration, BoxError> {
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{flag} {secs}: {e}").into())
}

/// Runs the load and prints one human line and one JSON line.
pub async fn run(args: RunArgs) -> Result<(), BoxError> {
    let report = measure(args).await?;
    println!("{}", human(&report));
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Arguments of `kith-bench burst`.
#[derive(Debug, Args)]
pub struct BurstArgs {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// The users file (its users log in with their password during the burst).
    #[arg(long)]
    tokens: PathBuf,
    /// `profile` connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// `login` connections during the burst.
    #[arg(long, default_value_t = 16)]
    login_connections: usize,
    /// Measured seconds of each phase.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before each phase's window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// The server's process id, to report its resident memory and cores.
    #[arg(long)]
    pid: Option<u32>,
    /// A label copied into the reports.
    #[arg(long, default_value = "")]
    label: String,
}

/// `kith-bench burst`: `profile` alone, then `profile` and a `login` burst at once over the
/// same window; prints the three runs (human and JSON lines) and the p99 ratio.
pub async fn burst(args: BurstArgs) -> Result<(), BoxError> {
    let run_args = |scenario, connections| RunArgs {
        url: args.url.clone(),
        scenario,
        connections,
        duration: args.duration,
        warmup: args.warmup,
        pid: args.pid,
        tokens: Some(args.tokens.clone()),
        label: args.label.clone(),
    };
    let alone = measure(run_args(Scenario::Profile, args.connections)).await?;
    println!("alone: {}", human(&alone));
    println!("{}", serde_json::to_string(&alone)?);
    let (busy, logins) = tokio::join!(
        measure(run_args(Scenario::Profile, args.connections)),
        measure(run_args(Scenario::Login, args.login_connections)),
    );
    let (busy, logins) = (busy?, logins?);
    println!("during burst: {}", human(&busy));
    println!("{}", serde_json::to_string(&busy)?);
    println!("burst: {}", human(&logins));
    println!("{}", serde_json::to_string(&logins)?);
    let ratio = busy.p99_ms / alone.p99_ms.max(f64::EPSILON);
    println!(
        "profile p99 alone {} ms, during the login burst {} ms: ratio {ratio:.2} (target <= 2); \
         p50 {} -> {} ms, req/s {} -> {}",
        alone.p99_ms,
        busy.p99_ms,
        alone.p50_ms,
        busy.p50_ms,
        alone.requests_per_s,
        busy.requests_per_s
    );
    Ok(())
}

/// Runs the load and returns its report.
async fn measure(args: RunArgs) -> Result<Report, BoxError> {
    if args.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    let duration = seconds("--duration", args.duration)?;
    let warmup = seconds("--warmup", args.warmup)?;
    if duration.is_zero() {
        return Err("--duration must be positive".into());
    }
    let target = Arc::new(Target::parse(&args.url)?);
    let users = match (&args.tokens, args.scenario.needs_users()) {
        (Some(path), _) => users::load(path)?,
        (None, false) => Vec::new(),
        (None, true) => {
            return Err(format!(
                "scenario {} needs --tokens FILE (from kith-bench seed)",
                args.scenario.name()
            )
            .into())
        }
    };
    if args.scenario.needs_users() && users.is_empty() {
        return Err("the users file is empty".into());
    }
    let least = match args.scenario {
        Scenario::Friends => relationships::users_needed_for_friends(),
        Scenario::InviteAccept | Scenario::FollowUnfollow => relationships::HUBS + 2,
        Scenario::Mixed => relationships::users_needed_for_friends(),
        Scenario::Followers => social::CELEBRITY + 1,
        _ => 0,
    };
    if users.len() < least {
        return Err(format!(
            "scenario {} needs at least {least} seeded users, the file has {}",
            args.scenario.name(),
            users.len()
        )
        .into());
    }
    let users = Arc::new(users);
    let since = if args.scenario.needs_sync_setup() {
        let started = Instant::now();
        let since = social::prepare_sync(target.clone(), users.clone()).await?;
        eprintln!(
            "sync setup: {} users made their changes in {:.1} s",
            since.len(),
            started.elapsed().as_secs_f64()
        );
        since
    } else {
        Vec::new()
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let sampler = args.pid.map(|pid| tokio::spawn(rss::sample(pid, stop_rx)));

    let measure_from = Instant::now() + warmup;
    let end = measure_from + duration;
    let pid = args.pid;
    let window_start = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from).await;
        cpu::snapshot(pid)
    });
    let mut tasks = Vec::with_capacity(args.connections);
    let pairs = Arc::new(if args.scenario == Scenario::InviteAccept {
        relationships::fresh_pairs(users.len())
    } else {
        Vec::new()
    });
    let fx = Arc::new(Fixture {
        users: users.as_ref().clone(),
        since,
        pairs: if args.scenario == Scenario::Mixed {
            relationships::fresh_pairs(users.len())
        } else {
            Vec::new()
        },
        ..Fixture::default()
    });
    let next_pair = Arc::new(AtomicUsize::new(0));
    for c in 0..args.connections {
        // Connections start at evenly spaced users so they do not all hit the same rows.
        let first = c * users.len().max(1) / args.connections;
        let (users, target) = (users.clone(), target.clone());
        tasks.push(if args.scenario == Scenario::InviteAccept {
            tokio::spawn(drive_pairs(
                users,
                pairs.clone(),
                next_pair.clone(),
                target,
                measure_from,
                end,
            ))
        } else {
            let (scenario, fx) = (args.scenario, fx.clone());
            tokio::spawn(async move {
                let tally = drive(scenario, fx, target, first, measure_from, end).await?;
                Ok((tally, 0, None))
            })
        });
    }
    let mut total = Tally::new()?;
    let mut done_pairs = 0;
    let mut ran_out: Option<Instant> = None;
    for task in tasks {
        let (tally, n, out) = task.await??;
        total.merge(tally)?;
        done_pairs += n;
        ran_out = ran_out.max(out);
    }
    // Out of pairs: the window ends when the last connection found none left.
    let duration = match ran_out {
        Some(at) if at <= measure_from => {
            return Err(format!(
                "the {} fresh pairs ran out during the warm-up; seed more users",
                pairs.len()
            )
            .into())
        }
        Some(at) if at < end => at - measure_from,
        _ => duration,
    };
    let window_end = cpu::snapshot(pid);
    let cpu = cpu::usage(&window_start.await?, &window_end);
    let _ = stop_tx.send(true);
    let memory = match sampler {
        Some(handle) => handle.await?,
        None => rss::Rss::default(),
    };

    let hist = &total.latency_us;
    let ok = hist.len();
    Ok(Report {
        scenario: args.scenario.name(),
        label: args.label,
        connections: args.connections,
        duration_s: duration.as_secs_f64(),
        warmup_s: warmup.as_secs_f64(),
        ok,
        requests_per_s: (ok as f64 / duration.as_secs_f64() * 10.0).round() / 10.0,
        p50_ms: ms(hist.value_at_quantile(0.50)),
        p99_ms: ms(hist.value_at_quantile(0.99)),
        p999_ms: ms(hist.value_at_quantile(0.999)),
        max_ms: ms(hist.max()),
        errors: total.errors,
        error_kinds: total.kinds,
        peak_rss_mb: mib(memory.peak_sampled_kib),
        vmhwm_mb: mib(memory.hwm_kib),
        server_cpu_us_per_req: per_request(cpu.server_cpu_s.map(|s| s * 1e6), ok),
        server_switches_per_req: per_request(cpu.server_switches.map(|n| n as f64), ok),
        cpu,
        pairs: (args.scenario == Scenario::InviteAccept).then_some(done_pairs),
        pairs_per_s: (args.scenario == Scenario::InviteAccept)
            .then(|| (done_pairs as f64 / duration.as_secs_f64() * 10.0).round() / 10.0),
        ran_out_of_pairs: ran_out.is_some_and(|at| at < end),
    })
}

/// `total / ok`, to one decimal; `None` without a total or a success.
fn per_request(total: Option<f64>, ok: u64) -> Option<f64> {
    let total = total?;
    (ok > 0).then(|| (total / ok as f64 * 10.0).round() / 10.0)
}

fn human(r: &Report) -> String {
    let rss = match (r.peak_rss_mb, r.vmhwm_mb) {
        (Some(peak), Some(hwm)) => format!(", server RSS peak {peak} MiB (VmHWM {hwm} MiB)"),
        (Some(peak), None) => format!(", server RSS peak {peak} MiB"),
        _ => String::new(),
    };
    let label = if r.label.is_empty() {
        String::new()
    } else {
        format!(" [{}]", r.label)
    };
    let show = |x: Option<f64>| x.map_or_else(|| "?".to_owned(), |c| format!("{c:.2}"));
    let mut cpu = format!(
        "; cores used: server {}, bench {}, machine {} of {}",
        show(r.cpu.server_cores),
        show(r.cpu.harness_cores),
        show(r.cpu.machine_cores),
        r.cpu.machine_cpus
    );
    if let (Some(us), Some(switches)) = (r.server_cpu_us_per_req, r.server_switches_per_req) {
        cpu.push_str(&format!(
            "; server per request: {us} µs CPU, {switches} context switches"
        ));
    }
    let pairs = match (r.pairs, r.pairs_per_s) {
        (Some(n), Some(rate)) => format!(" ({n} pairs, {rate} pairs/s)"),
        _ => String::new(),
    };
    let early = if r.ran_out_of_pairs {
        " [ran out of fresh pairs: window cut short]"
    } else {
        ""
    };
    format!(
        "{}{}: {} conns, {:.1} s: {} ok, {} req/s{}, p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms, {} errors{}{}{}",
        r.scenario,
        label,
        r.connections,
        r.duration_s,
        r.ok,
        r.requests_per_s,
        pairs,
        r.p50_ms,
        r.p99_ms,
        r.p999_ms,
        r.max_ms,
        r.errors,
        rss,
        cpu,
        early
    )
}
