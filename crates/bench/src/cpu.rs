//! CPU used by the server, this harness and the machine over a window, to show how shared it was.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// `/proc` reports times in USER_HZ ticks, which Linux fixes at 100 for user space.
const TICKS_PER_SEC: f64 = 100.0;

/// Cumulative CPU ticks at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    at: Instant,
    machine_busy: Option<u64>,
    harness: Option<u64>,
    server: Option<u64>,
    server_switches: Option<u64>,
}

/// Average cores in use over a window.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    /// The server process (all its threads).
    pub server_cores: Option<f64>,
    /// This load generator.
    pub harness_cores: Option<f64>,
    /// Every process on the machine, these two included.
    pub machine_cores: Option<f64>,
    /// CPUs on the machine.
    pub machine_cpus: usize,
    /// Seconds of CPU the server used (user and system).
    pub server_cpu_s: Option<f64>,
    /// Context switches of the server's threads, voluntary or not. Threads that exited during
    /// the window are missed, so this can only undercount.
    pub server_switches: Option<u64>,
}

/// Takes a snapshot, with the server's ticks when `pid` is given.
pub fn snapshot(pid: Option<u32>) -> Snapshot {
    let stat = std::fs::read_to_string("/proc/stat").ok();
    Snapshot {
        at: Instant::now(),
        machine_busy: stat.as_deref().and_then(machine_busy_ticks),
        harness: process_ticks("self"),
        server: pid.and_then(|p| process_ticks(&p.to_string())),
        server_switches: pid.and_then(context_switches),
    }
}

/// The cores used between two snapshots.
pub fn usage(from: &Snapshot, to: &Snapshot) -> Usage {
    let wall = to.at.saturating_duration_since(from.at);
    let cores = |a: Option<u64>, b: Option<u64>| {
        let ticks = delta(a, b)?;
        (wall > Duration::ZERO).then(|| round2(ticks as f64 / TICKS_PER_SEC / wall.as_secs_f64()))
    };
    Usage {
        server_cores: cores(from.server, to.server),
        harness_cores: cores(from.harness, to.harness),
        machine_cores: cores(from.machine_busy, to.machine_busy),
        machine_cpus: std::thread::available_parallelism().map_or(0, usize::from),
        server_cpu_s: delta(from.server, to.server).map(|t| t as f64 / TICKS_PER_SEC),
        server_switches: delta(from.server_switches, to.server_switches),
    }
}

/// How far a counter moved between two readings, if both were taken.
fn delta(from: Option<u64>, to: Option<u64>) -> Option<u64> {
    Some(to?.saturating_sub(from?))
}

/// Context switches of every live thread of `pid`, summed from `/proc/PID/task/*/status`.
fn context_switches(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        // A thread may exit between the listing and the read: it is simply not counted.
        if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
            total += parse_switches(&status);
        }
    }
    Some(total)
}

fn parse_switches(status: &str) -> u64 {
    status
        .lines()
        .filter(|l| l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Busy ticks of all CPUs from `/proc/stat`: everything but idle and iowait.
fn machine_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    let take = |i: usize| fields.get(i).copied().unwrap_or(0);
    Some(take(0) + take(1) + take(2) + take(5) + take(6) + take(7))
}

/// utime + stime of a process, its exited threads included.
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_process_ticks(&stat)
}

fn parse_process_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses; the fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Counting from the state (field 3 of proc(5)), utime is field 14 and stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_proc_stat_lines() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
        assert_eq!(machine_busy_ticks(stat), Some(161));
        let pid = "42 (kith (a) b) S 1 42 42 0 -1 4194560 500 0 0 0 730 120 0 0 20 0 4 0 9 1 2";
        assert_eq!(parse_process_ticks(pid), Some(850));
        let status = "Name:\tkith\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(parse_switches(status), 127);
    }

    #[test]
    fn reads_this_process() {
        assert!(process_ticks("self").is_some());
        let s = snapshot(None);
        assert!(s.machine_busy.is_some());
        assert!(context_switches(std::process::id()).is_some_and(|n| n > 0));
    }
}
