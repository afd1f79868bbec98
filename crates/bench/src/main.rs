//! `kith-bench`: seeds users through the public API and measures a running kith server.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod addressbook;
mod baseline;
mod bulk;
mod cpu;
mod http;
mod relationships;
mod report;
mod rss;
mod run;
mod scenario;
mod seed;
mod social;
mod users;

/// The error type of the harness: any error, reported as text.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
#[command(name = "kith-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drives one scenario at a running server and prints its figures.
    Run(run::RunArgs),
    /// The login-burst check: `profile` alone, then `profile` while a `login` burst runs;
    /// prints both `profile` p99s and their ratio.
    Burst(run::BurstArgs),
    /// Creates users through the public API (`--url`), or in bulk straight into the database
    /// (`--db`), and writes those with a session to a users file.
    Seed(seed::SeedArgs),
    /// Makes the friendships the `friends` scenario reads (4 hubs with 50 friends each).
    Prepare(relationships::PrepareArgs),
    /// Fills the first seeded user's v2 address book for `addressbook-search`.
    PrepareBook(addressbook::PrepareBookArgs),
    /// Measures the references: pgbench select-only and upsert, or SQLite read/upsert loops.
    Baseline(baseline::BaselineArgs),
    /// Serves a bare actix-web `GET /raw` JSON endpoint (the HTTP ceiling) until killed.
    Ceiling(baseline::CeilingArgs),
    /// Prints the markdown tables (figures and target ratios) of a results file.
    Report(report::ReportArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kith-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Burst(args) => run::burst(args).await,
            Command::Seed(args) => seed::seed(args).await,
            Command::Prepare(args) => relationships::prepare(args).await,
            Command::PrepareBook(args) => addressbook::prepare_book(args).await,
            Command::Baseline(args) => baseline::baseline(args).await,
            Command::Ceiling(args) => baseline::ceiling(args).await,
            Command::Report(args) => report::report(&args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kith-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
