//! `kith-bench run`: C keep-alive connections each sending requests back to back for a fixed time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::http::{Conn, Target};
use crate::scenario::Scenario;
use crate::users::{self, User};
use crate::{cpu, rss, BoxError};

/// Latencies are recorded in microseconds, up to a minute, to three significant digits.
const MAX_LATENCY_US: u64 = 60_000_000;
/// After a connection failure, wait this long so a dead server is not hammered in a tight loop.
const FAILURE_PAUSE: Duration = Duration::from_millis(10);
/// Distinct failure kinds kept per connection; the rest are folded into one bucket.
const MAX_KINDS: usize = 32;

/// Arguments of `kith-bench run`.
#[derive(Debug, Args)]
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
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0)
}

/// Loops requests on one connection until `end`; those completing at or after `measure_from`
/// count, and one still in flight at `end` is abandoned uncounted.
async fn drive(
    scenario: Scenario,
    users: Arc<Vec<User>>,
    target: Arc<Target>,
    first: usize,
    measure_from: Instant,
    end: Instant,
) -> Result<Tally, BoxError> {
    let mut tally = Tally::new()?;
    let mut conn = Conn::new(target);
    let mut n = first;
    while Instant::now() < end {
        let req = scenario.request(&users, n);
        n = n.wrapping_add(1);
        let started = Instant::now();
        let outcome = tokio::select! {
            r = conn.send(&req) => r,
            _ = tokio::time::sleep_until(end) => break,
        };
        let done = Instant::now();
        let elapsed = done - started;
        let verdict = match outcome {
            Ok((status, body)) => scenario.judge(status, &body),
            Err(e) => {
                tokio::time::sleep(FAILURE_PAUSE).await;
                Err(format!("transport: {e}"))
            }
        };
        // Completions are what a closed loop measures: a slow request (a login at bcrypt cost 12
        // under 16 connections takes seconds) still counts if it ends inside the window.
        if done < measure_from {
            continue;
        }
        match verdict {
            Ok(()) => {
                let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
                tally.latency_us.saturating_record(us.max(1));
            }
            Err(kind) => tally.fail(kind),
        }
    }
    Ok(tally)
}

fn seconds(flag: &str, secs: f64) -> Result<Duration, BoxError> {
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{flag} {secs}: {e}").into())
}

/// Runs the load and prints one human line and one JSON line.
pub async fn run(args: RunArgs) -> Result<(), BoxError> {
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
    let users = Arc::new(users);

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
    for c in 0..args.connections {
        // Connections start at evenly spaced users so they do not all hit the same rows.
        let first = c * users.len().max(1) / args.connections;
        tasks.push(tokio::spawn(drive(
            args.scenario,
            users.clone(),
            target.clone(),
            first,
            measure_from,
            end,
        )));
    }
    let mut total = Tally::new()?;
    for task in tasks {
        total.merge(task.await??)?;
    }
    let window_end = cpu::snapshot(pid);
    let cpu = cpu::usage(&window_start.await?, &window_end);
    let _ = stop_tx.send(true);
    let memory = match sampler {
        Some(handle) => handle.await?,
        None => rss::Rss::default(),
    };

    let hist = &total.latency_us;
    let ok = hist.len();
    let report = Report {
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
        cpu,
    };
    println!("{}", human(&report));
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
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
    let cpu = format!(
        "; cores used: server {}, bench {}, machine {} of {}",
        show(r.cpu.server_cores),
        show(r.cpu.harness_cores),
        show(r.cpu.machine_cores),
        r.cpu.machine_cpus
    );
    format!(
        "{}{}: {} conns, {:.1} s: {} ok, {} req/s, p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms, {} errors{}{}",
        r.scenario,
        label,
        r.connections,
        r.duration_s,
        r.ok,
        r.requests_per_s,
        r.p50_ms,
        r.p99_ms,
        r.p999_ms,
        r.max_ms,
        r.errors,
        rss,
        cpu
    )
}
