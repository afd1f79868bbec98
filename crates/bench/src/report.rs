//! `kith-bench report`: turns the JSON lines of `run` and `baseline` (one measurement session)
//! into the markdown tables of docs/benchmarks.md, with each target's ratio.

use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

use crate::BoxError;

/// Arguments of `kith-bench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The JSON lines printed by `run` and `baseline` (e.g. run-first-figures.sh's results.jsonl).
    #[arg(long)]
    results: PathBuf,
}

/// The fields of a `run` or `baseline` line the report reads.
#[derive(Debug, Deserialize, Clone)]
struct Line {
    scenario: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    connections: usize,
    #[serde(default)]
    requests_per_s: Option<f64>,
    #[serde(default)]
    tps: Option<f64>,
    #[serde(default)]
    p99_ms: Option<f64>,
    #[serde(default)]
    errors: Option<u64>,
}

impl Line {
    fn rate(&self) -> Option<f64> {
        self.requests_per_s.or(self.tps)
    }
}

/// One target of issue 6: Kith's `scenario` on `label` against `reference` on the same label.
struct Target {
    label: &'static str,
    scenario: &'static str,
    reference: &'static str,
    at_least: f64,
    p99_at_most_ms: Option<f64>,
}

const TARGETS: [Target; 5] = [
    Target {
        label: "postgres",
        scenario: "profile",
        reference: "pgbench-select-only",
        at_least: 0.6,
        p99_at_most_ms: None,
    },
    Target {
        label: "postgres",
        scenario: "friends",
        reference: "pgbench-select-only",
        at_least: 0.4,
        p99_at_most_ms: Some(10.0),
    },
    Target {
        label: "postgres",
        scenario: "invite-accept",
        reference: "pgbench-upsert",
        at_least: 0.4,
        p99_at_most_ms: None,
    },
    Target {
        label: "sqlite",
        scenario: "profile",
        reference: "sqlite-read-loop",
        at_least: 0.5,
        p99_at_most_ms: None,
    },
    Target {
        label: "sqlite",
        scenario: "invite-accept",
        reference: "sqlite-upsert-loop",
        at_least: 0.3,
        p99_at_most_ms: None,
    },
];

fn find<'a>(lines: &'a [Line], label: &str, scenario: &str) -> Option<&'a Line> {
    // The last line wins: a session may repeat a run.
    lines
        .iter()
        .rev()
        .find(|l| l.label == label && l.scenario == scenario)
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.1}"))
}

/// The markdown for `lines`.
fn render(lines: &[Line]) -> String {
    let mut out = String::from(
        "| database | scenario | conns | req/s or tps | p99 ms | errors |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for l in lines {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            l.label,
            l.scenario,
            l.connections,
            fmt(l.rate()),
            fmt(l.p99_ms),
            l.errors.map_or_else(|| "-".to_owned(), |e| e.to_string()),
        ));
    }
    out.push_str(
        "\n| target | Kith | reference | ratio | needed | met |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for t in &TARGETS {
        let kith = find(lines, t.label, t.scenario);
        let reference = find(lines, t.label, t.reference);
        let ratio = match (kith.and_then(Line::rate), reference.and_then(Line::rate)) {
            (Some(k), Some(r)) if r > 0.0 => Some(k / r),
            _ => None,
        };
        let p99_ok = match (t.p99_at_most_ms, kith.and_then(|k| k.p99_ms)) {
            (Some(limit), Some(p99)) => Some(p99 <= limit),
            (Some(_), None) => None,
            (None, _) => Some(true),
        };
        let met = match (ratio, p99_ok) {
            (Some(r), Some(p)) => {
                if r >= t.at_least && p {
                    "yes"
                } else {
                    "**no**"
                }
            }
            _ => "not measured",
        };
        let needed = match t.p99_at_most_ms {
            Some(p) => format!("≥ {} and p99 ≤ {p} ms", t.at_least),
            None => format!("≥ {}", t.at_least),
        };
        out.push_str(&format!(
            "| {} {} / {} | {} | {} | {} | {} | {} |\n",
            t.label,
            t.scenario,
            t.reference,
            fmt(kith.and_then(Line::rate)),
            fmt(reference.and_then(Line::rate)),
            ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")),
            needed,
            met
        ));
    }
    out
}

/// `kith-bench report`: prints the tables.
pub fn report(args: &ReportArgs) -> Result<(), BoxError> {
    let text = std::fs::read_to_string(&args.results)
        .map_err(|e| format!("{}: {e}", args.results.display()))?;
    let mut lines = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(raw)
            .map_err(|e| format!("{} line {}: {e}", args.results.display(), n + 1))?;
        lines.push(line);
    }
    print!("{}", render(&lines));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn line(label: &str, scenario: &str, rate: f64, p99: Option<f64>) -> Line {
        Line {
            scenario: scenario.into(),
            label: label.into(),
            connections: 64,
            requests_per_s: Some(rate),
            tps: None,
            p99_ms: p99,
            errors: Some(0),
        }
    }

    #[test]
    fn ratios_and_verdicts() {
        let mut lines = vec![
            line("postgres", "profile", 600.0, Some(5.0)),
            line("postgres", "friends", 500.0, Some(12.0)),
            line("sqlite", "profile", 100.0, Some(1.0)),
            line("sqlite", "sqlite-read-loop", 1000.0, None),
        ];
        let mut pg = line("postgres", "pgbench-select-only", 1000.0, None);
        pg.requests_per_s = None;
        pg.tps = Some(1000.0);
        lines.push(pg);
        let md = render(&lines);
        assert!(
            md.contains(
                "| postgres profile / pgbench-select-only | 600.0 | 1000.0 | 0.60 | ≥ 0.6 | yes |"
            ),
            "{md}"
        );
        // Ratio 0.5 is enough, but the p99 is over 10 ms.
        assert!(
            md.contains("| 0.50 | ≥ 0.4 and p99 ≤ 10 ms | **no** |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| sqlite profile / sqlite-read-loop | 100.0 | 1000.0 | 0.10 | ≥ 0.5 | **no** |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| postgres invite-accept / pgbench-upsert | - | - | - | ≥ 0.4 | not measured |"
            ),
            "{md}"
        );
    }
}
