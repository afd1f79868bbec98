//! The server's resident memory, read from `/proc/PID/status` (Linux only).

use std::time::Duration;

use tokio::sync::watch;

/// How often the resident set is sampled while a run lasts.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Memory figures in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    /// The largest `VmRSS` sampled during the run (warm-up included).
    pub peak_sampled_kib: Option<u64>,
    /// `VmHWM` at the end: the peak over the process's whole life, seeding included.
    pub hwm_kib: Option<u64>,
}

/// One `kB` field of `/proc/PID/status`, or `None` once the process is gone.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, field)
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Samples `VmRSS` of `pid` until `stop` turns true, then reads `VmHWM`.
pub async fn sample(pid: u32, mut stop: watch::Receiver<bool>) -> Rss {
    let mut peak: Option<u64> = None;
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Some(kib) = status_kib(pid, "VmRSS") {
                    peak = Some(peak.map_or(kib, |p| p.max(kib)));
                }
            }
            _ = stop.changed() => break,
        }
    }
    if let Some(kib) = status_kib(pid, "VmRSS") {
        peak = Some(peak.map_or(kib, |p| p.max(kib)));
    }
    Rss {
        peak_sampled_kib: peak,
        hwm_kib: status_kib(pid, "VmHWM"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_kib_field() {
        let status = "Name:\tkith\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(51200));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(40960));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn reads_this_process() {
        assert!(status_kib(std::process::id(), "VmRSS").is_some_and(|k| k > 0));
    }
}
