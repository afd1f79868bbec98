//! The reference figures Kith's are divided by (issue 6): `kith-bench baseline` (pgbench
//! select-only and a single-row upsert on PostgreSQL, the same read and upsert in a tight loop on
//! one SQLite connection) and `kith-bench ceiling` (a bare actix-web JSON endpoint: the HTTP
//! stack's own limit on this machine).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use clap::Args;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use serde::Serialize;
use serde_json::json;

use crate::BoxError;

diesel::table! {
    /// The one table the SQLite loops read and upsert.
    kith_bench_kv (id) {
        id -> BigInt,
        v -> BigInt,
    }
}

/// Arguments of `kith-bench baseline`.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// `postgres://…` (a database the baseline may create tables in) or `sqlite://PATH`.
    #[arg(long)]
    db: String,
    /// pgbench clients (connections), like the HTTP runs' connections.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Measured seconds per figure.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Rows in the read / upsert table (pgbench's scale is rows / 100,000, at least 1).
    #[arg(long, default_value_t = 100_000)]
    rows: u64,
    /// A label copied into the report, e.g. the database.
    #[arg(long, default_value = "")]
    label: String,
}

/// One reference figure, printed as a JSON line next to `run`'s.
#[derive(Debug, Serialize)]
struct Figure {
    scenario: &'static str,
    label: String,
    /// pgbench clients, or 1 for the single-connection SQLite loop.
    connections: usize,
    duration_s: f64,
    /// Transactions counted (for pgbench: tps × duration, rounded).
    operations: u64,
    /// Transactions (statements) per second.
    tps: f64,
    /// Mean latency in milliseconds.
    latency_avg_ms: f64,
    /// The command that produced it.
    command: String,
}

/// `kith-bench baseline`.
pub async fn baseline(args: BaselineArgs) -> Result<(), BoxError> {
    if args.clients == 0 || args.rows == 0 || args.duration.is_nan() || args.duration <= 0.0 {
        return Err("--clients, --rows and --duration must be positive".into());
    }
    let figures = if args.db.starts_with("postgres://") || args.db.starts_with("postgresql://") {
        let args = std::sync::Arc::new(args);
        let a = args.clone();
        tokio::task::spawn_blocking(move || pgbench_figures(&a)).await??
    } else if let Some(path) = args.db.strip_prefix("sqlite://") {
        let path = PathBuf::from(path);
        let (rows, secs, label) = (args.rows, args.duration, args.label.clone());
        tokio::task::spawn_blocking(move || sqlite_figures(&path, rows, secs, &label)).await??
    } else {
        return Err("--db must be postgres://… or sqlite://PATH".into());
    };
    for f in &figures {
        println!(
            "{:<22} {:>10.1} tps  avg {:.3} ms  ({} conns, {:.0} s)",
            f.scenario, f.tps, f.latency_avg_ms, f.connections, f.duration_s
        );
        println!("{}", serde_json::to_string(f)?);
    }
    Ok(())
}

fn run_pgbench(args: &[String]) -> Result<String, BoxError> {
    let out = Command::new("pgbench")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run pgbench (is it installed?): {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(format!("pgbench {}: {text}", args.join(" ")).into());
    }
    Ok(text)
}

/// The number after `key` on the first line that has it, e.g. `tps = 1234.5 (without …)`.
fn number_after(text: &str, key: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix(key)?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn pgbench_figure(
    scenario: &'static str,
    args: &BaselineArgs,
    extra: &[String],
) -> Result<Figure, BoxError> {
    let secs = args.duration.ceil().max(1.0);
    let mut argv: Vec<String> = vec![
        "-n".into(),
        "-M".into(),
        "prepared".into(),
        "-c".into(),
        args.clients.to_string(),
        "-j".into(),
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(args.clients)
            .to_string(),
        "-T".into(),
        format!("{secs}"),
    ];
    argv.extend_from_slice(extra);
    argv.push(args.db.clone());
    let text = run_pgbench(&argv)?;
    let tps = number_after(&text, "tps = ").ok_or_else(|| format!("no tps in: {text}"))?;
    let latency = number_after(&text, "latency average = ").unwrap_or(f64::NAN);
    Ok(Figure {
        scenario,
        label: args.label.clone(),
        connections: args.clients,
        duration_s: secs,
        operations: (tps * secs).round() as u64,
        tps,
        latency_avg_ms: latency,
        command: format!("pgbench {}", argv.join(" ")),
    })
}

fn pgbench_figures(args: &BaselineArgs) -> Result<Vec<Figure>, BoxError> {
    let scale = (args.rows / 100_000).max(1);
    run_pgbench(&[
        "-i".into(),
        "-q".into(),
        "-s".into(),
        scale.to_string(),
        args.db.clone(),
    ])?;
    let select = pgbench_figure("pgbench-select-only", args, &["-S".into()])?;

    let dir = std::env::temp_dir().join(format!("kith-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let setup = dir.join("setup.sql");
    std::fs::write(
        &setup,
        format!(
            "CREATE TABLE IF NOT EXISTS kith_bench_kv (id BIGINT PRIMARY KEY, v BIGINT NOT NULL);\n\
             INSERT INTO kith_bench_kv SELECT g, 0 FROM generate_series(1, {}) g ON CONFLICT DO NOTHING;\n",
            args.rows
        ),
    )?;
    // One transaction that runs the setup once; pgbench is the only client tool assumed here.
    run_pgbench(&[
        "-n".into(),
        "-t".into(),
        "1".into(),
        "-f".into(),
        setup.display().to_string(),
        args.db.clone(),
    ])?;
    let script = dir.join("upsert.sql");
    std::fs::write(
        &script,
        format!(
            "\\set id random(1, {})\n\
             INSERT INTO kith_bench_kv (id, v) VALUES (:id, 1) \
             ON CONFLICT (id) DO UPDATE SET v = kith_bench_kv.v + 1;\n",
            args.rows
        ),
    )?;
    let upsert = pgbench_figure(
        "pgbench-upsert",
        args,
        &["-f".into(), script.display().to_string()],
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(vec![select, upsert])
}

/// A splitmix64 step: cheap, and enough to spread keys without a dependency.
fn next_key(state: &mut u64, rows: u64) -> i64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    i64::try_from(z % rows + 1).unwrap_or(1)
}

fn sqlite_figures(
    path: &std::path::Path,
    rows: u64,
    secs: f64,
    label: &str,
) -> Result<Vec<Figure>, BoxError> {
    use kith_bench_kv::dsl as kv;
    let url = path.display().to_string();
    let mut conn = SqliteConnection::establish(&url)?;
    // Kith's own connection settings (crates/store/src/conn.rs), so the loop is the ceiling of
    // the same database configuration.
    diesel::sql_query("PRAGMA busy_timeout = 5000").execute(&mut conn)?;
    diesel::sql_query("PRAGMA journal_mode = WAL").execute(&mut conn)?;
    diesel::sql_query("PRAGMA synchronous = NORMAL").execute(&mut conn)?;
    diesel::sql_query(
        "CREATE TABLE IF NOT EXISTS kith_bench_kv (id BIGINT PRIMARY KEY NOT NULL, v BIGINT NOT NULL)",
    )
    .execute(&mut conn)?;
    diesel::sql_query(format!(
        "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {rows}) \
         INSERT OR IGNORE INTO kith_bench_kv SELECT x, 0 FROM g"
    ))
    .execute(&mut conn)?;
    let window = Duration::try_from_secs_f64(secs)?;
    let mut state = 0x5EED;

    let started = Instant::now();
    let mut reads = 0u64;
    while started.elapsed() < window {
        let id = next_key(&mut state, rows);
        let _: i64 = kv::kith_bench_kv.find(id).select(kv::v).first(&mut conn)?;
        reads += 1;
    }
    let read_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut writes = 0u64;
    while started.elapsed() < window {
        let id = next_key(&mut state, rows);
        // Each upsert commits on its own, the way each Kith write is its own transaction.
        diesel::insert_into(kv::kith_bench_kv)
            .values((kv::id.eq(id), kv::v.eq(1)))
            .on_conflict(kv::id)
            .do_update()
            .set(kv::v.eq(kv::v + 1))
            .execute(&mut conn)?;
        writes += 1;
    }
    let write_secs = started.elapsed().as_secs_f64();
    let figure = |scenario, n: u64, s: f64| Figure {
        scenario,
        label: label.to_owned(),
        connections: 1,
        duration_s: s,
        operations: n,
        tps: (n as f64 / s * 10.0).round() / 10.0,
        latency_avg_ms: s * 1000.0 / n.max(1) as f64,
        command: format!("kith-bench baseline --db sqlite://{url} --rows {rows} --duration {secs}"),
    };
    Ok(vec![
        figure("sqlite-read-loop", reads, read_secs),
        figure("sqlite-upsert-loop", writes, write_secs),
    ])
}

/// Arguments of `kith-bench ceiling`.
#[derive(Debug, Args)]
pub struct CeilingArgs {
    /// Where to listen, e.g. 127.0.0.1:8090.
    #[arg(long)]
    bind: String,
    /// Actix workers; Kith's default is one per core.
    #[arg(long)]
    workers: Option<usize>,
}

/// The body of `GET /raw`: about the size of a SealTalk user answer.
async fn raw() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "code": 200,
        "result": {"id": "4503599627370495", "nickname": "ceiling", "portraitUri": ""}
    }))
}

/// `kith-bench ceiling`: serves `GET /raw` until killed; `run --scenario raw` measures it.
pub async fn ceiling(args: CeilingArgs) -> Result<(), BoxError> {
    let mut server = HttpServer::new(|| App::new().route("/raw", web::get().to(raw)));
    if let Some(w) = args.workers {
        server = server.workers(w);
    }
    server.bind(&args.bind)?.run().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn reads_pgbench_output() {
        let text = "number of failed transactions: 0 (0.000%)\nlatency average = 1.234 ms\n\
                    initial connection time = 10.5 ms\ntps = 5678.9 (without initial connection time)\n";
        assert_eq!(number_after(text, "tps = "), Some(5678.9));
        assert_eq!(number_after(text, "latency average = "), Some(1.234));
        assert_eq!(number_after(text, "nothing = "), None);
    }

    #[test]
    fn keys_stay_in_range_and_spread() {
        let mut s = 1;
        let keys: Vec<i64> = (0..1000).map(|_| next_key(&mut s, 50)).collect();
        assert!(keys.iter().all(|k| (1..=50).contains(k)));
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), 50);
    }

    #[test]
    fn the_sqlite_loop_reads_and_upserts() {
        let dir = std::env::temp_dir().join(format!("kith-baseline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let figures = sqlite_figures(&dir.join("b.db"), 100, 0.05, "t").unwrap();
        assert_eq!(figures[0].scenario, "sqlite-read-loop");
        assert!(figures.iter().all(|f| f.tps > 0.0));
        let mut conn =
            SqliteConnection::establish(&dir.join("b.db").display().to_string()).unwrap();
        let total: i64 = kith_bench_kv::table
            .select(kith_bench_kv::v)
            .load::<i64>(&mut conn)
            .unwrap()
            .iter()
            .sum();
        // Every upsert landed on one of the 100 seeded rows (which start at 0), each adding 1.
        assert_eq!(u64::try_from(total).unwrap(), figures[1].operations);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
