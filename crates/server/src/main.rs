//! `kith`: reads the configuration, builds the adapters, wires them to the domain, and runs.

use clap::Parser;
use kith_server::config::Cli;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let settings = match cli.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kith: invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Err(e) = kith_server::telemetry::init(settings.log_format, &settings.log_filter) {
        eprintln!("kith: cannot start logging: {e}");
        return std::process::ExitCode::from(2);
    }
    match kith_server::app::run(settings) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "kith failed");
            eprintln!("kith: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
