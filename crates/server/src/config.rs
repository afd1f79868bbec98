//! Command line and environment configuration: the `kith` CLI and the validated [`Settings`] it yields.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use thiserror::Error;

/// Lowest bcrypt cost accepted in production; below it hashes are cheap to brute-force.
pub const MIN_BCRYPT_COST: u32 = 10;
/// Highest bcrypt cost accepted; above it one login takes seconds of CPU.
pub const MAX_BCRYPT_COST: u32 = 16;

/// Kith: a contacts and relationship service.
///
/// Every option can also be given through the environment variable shown next to it; a flag wins
/// over its variable. Without a subcommand, `kith` serves.
#[derive(Debug, Parser)]
#[command(name = "kith", version, about, long_about, propagate_version = true)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings shared by every subcommand.
    #[command(flatten)]
    pub options: Options,
}

/// The subcommands of `kith`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
}

/// Which SMS gateway `KITH_SMS` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmsKind {
    /// Write each code to the log (development only).
    Log,
    /// Append each message as a JSON line to the file named by `KITH_SMS_OUTBOX`.
    Outbox,
    /// POST each message as JSON to `KITH_SMS_WEBHOOK_URL`.
    Webhook,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line, with the fields of the enclosing spans (request id included).
    Json,
}

/// Every setting, as flags and environment variables. Validate with [`Cli::settings`].
///
/// The derived `Debug` shows the database and webhook URLs as given, credentials included: log
/// [`Settings`] instead, whose `Debug` redacts them.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// Address and port the HTTP server listens on.
    #[arg(
        long,
        env = "KITH_BIND",
        default_value = "127.0.0.1:8080",
        global = true,
        help_heading = "Server"
    )]
    pub bind: SocketAddr,

    /// Number of HTTP worker threads (default: one per CPU).
    #[arg(long, env = "KITH_WORKERS", global = true, help_heading = "Server")]
    pub workers: Option<usize>,

    /// Seconds to let in-flight requests finish after SIGTERM or Ctrl-C.
    #[arg(
        long,
        env = "KITH_SHUTDOWN_TIMEOUT_SECS",
        default_value_t = 30,
        global = true,
        help_heading = "Server"
    )]
    pub shutdown_timeout_secs: u64,

    /// Database URL: `sqlite://path/to/file.db` (created if missing) or `postgres://user:pass@host/db`.
    #[arg(
        long,
        env = "KITH_DATABASE_URL",
        default_value = "sqlite://kith.db",
        hide_env_values = true,
        global = true,
        help_heading = "Database"
    )]
    pub database_url: String,

    /// Maximum number of pooled database connections.
    #[arg(
        long,
        env = "KITH_DB_POOL_SIZE",
        default_value_t = 16,
        global = true,
        help_heading = "Database"
    )]
    pub db_pool_size: u32,

    /// Milliseconds to wait for a free database connection before answering 503.
    #[arg(
        long,
        env = "KITH_DB_TIMEOUT_MS",
        default_value_t = 5000,
        global = true,
        help_heading = "Database"
    )]
    pub db_timeout_ms: u64,

    /// SMS gateway [default: log, or outbox when KITH_SMS_OUTBOX is set].
    #[arg(
        long,
        env = "KITH_SMS",
        value_enum,
        global = true,
        help_heading = "SMS"
    )]
    pub sms: Option<SmsKind>,

    /// File the outbox gateway appends one JSON line per message to (created if missing).
    /// Setting it selects the outbox gateway unless KITH_SMS says otherwise.
    #[arg(long, env = "KITH_SMS_OUTBOX", global = true, help_heading = "SMS")]
    pub sms_outbox: Option<PathBuf>,

    /// http(s) URL the webhook gateway POSTs each message to as JSON.
    #[arg(
        long,
        env = "KITH_SMS_WEBHOOK_URL",
        hide_env_values = true,
        global = true,
        help_heading = "SMS"
    )]
    pub sms_webhook_url: Option<String>,

    /// Most SMS codes one client IP may request per hour.
    #[arg(
        long,
        env = "KITH_SMS_PER_IP_HOURLY",
        default_value_t = 20,
        global = true,
        help_heading = "SMS"
    )]
    pub sms_per_ip_hourly: u32,

    /// Most SMS codes the whole service sends per hour.
    #[arg(
        long,
        env = "KITH_SMS_GLOBAL_HOURLY",
        default_value_t = 1000,
        global = true,
        help_heading = "SMS"
    )]
    pub sms_global_hourly: u32,

    /// Log line format.
    #[arg(
        long,
        env = "KITH_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Pretty,
        global = true,
        help_heading = "Logging"
    )]
    pub log_format: LogFormat,

    /// Log filter in tracing's EnvFilter syntax, e.g. `info` or `info,kith_store=debug`.
    #[arg(
        long = "log",
        env = "KITH_LOG",
        default_value = "info",
        global = true,
        help_heading = "Logging"
    )]
    pub log: String,

    /// Name of the session cookie.
    #[arg(
        long,
        env = "KITH_COOKIE_NAME",
        default_value = "kith_session",
        global = true,
        help_heading = "Sessions"
    )]
    pub cookie_name: String,

    /// Mark the session cookie `Secure` (send it over HTTPS only). Turn on behind TLS. The
    /// variable takes true/false, yes/no, on/off or 1/0.
    #[arg(
        long,
        env = "KITH_COOKIE_SECURE",
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new(),
        global = true,
        help_heading = "Sessions"
    )]
    pub cookie_secure: bool,

    /// `Domain` attribute of the session cookie (default: none, the cookie stays on this host).
    #[arg(
        long,
        env = "KITH_COOKIE_DOMAIN",
        global = true,
        help_heading = "Sessions"
    )]
    pub cookie_domain: Option<String>,

    /// Seconds a session survives without use.
    #[arg(
        long,
        env = "KITH_SESSION_IDLE_SECS",
        default_value_t = 30 * 24 * 3600,
        global = true,
        help_heading = "Sessions"
    )]
    pub session_idle_secs: u64,

    /// Seconds a session lives at most, used or not; at least KITH_SESSION_IDLE_SECS.
    #[arg(
        long,
        env = "KITH_SESSION_MAX_SECS",
        default_value_t = 90 * 24 * 3600,
        global = true,
        help_heading = "Sessions"
    )]
    pub session_max_secs: u64,

    /// bcrypt cost of new password hashes (10 to 16). Older, cheaper hashes are upgraded at login.
    #[arg(
        long,
        env = "KITH_BCRYPT_COST",
        default_value_t = 12,
        global = true,
        help_heading = "Passwords"
    )]
    pub bcrypt_cost: u32,

    /// Most password hashes computed at once (default: one per CPU), so a burst of logins cannot
    /// starve the server.
    #[arg(
        long,
        env = "KITH_HASH_CONCURRENCY",
        global = true,
        help_heading = "Passwords"
    )]
    pub hash_concurrency: Option<usize>,

    /// After inviting someone, inviting them again within this many seconds answers `None`.
    #[arg(
        long,
        env = "KITH_INVITE_PENDING_COOLDOWN_SECS",
        default_value_t = 3 * 24 * 3600,
        global = true,
        help_heading = "Relationships"
    )]
    pub invite_pending_cooldown_secs: u64,

    /// After someone ignores my request, inviting them again within this many seconds answers
    /// `None`.
    #[arg(
        long,
        env = "KITH_INVITE_IGNORED_COOLDOWN_SECS",
        default_value_t = 24 * 3600,
        global = true,
        help_heading = "Relationships"
    )]
    pub invite_ignored_cooldown_secs: u64,

    /// Phones one account may upload or look up per day (phone-book upload and
    /// get_contacts_info), against harvesting of who is registered.
    #[arg(
        long,
        env = "KITH_PHONES_PER_DAY",
        default_value_t = 5000,
        global = true,
        help_heading = "Relationships"
    )]
    pub phones_per_day: u32,

    /// The most rows one list answer holds; longer lists are cut and linked (`Link: rel="next"`).
    #[arg(
        long,
        env = "KITH_LIST_CAP",
        default_value_t = 1000,
        global = true,
        help_heading = "Relationships"
    )]
    pub list_cap: u32,
}

/// The SMS gateway to build, with what it needs.
#[derive(Clone, PartialEq, Eq)]
pub enum SmsChoice {
    /// Log each code (development).
    Log,
    /// Append JSON lines to this file.
    Outbox(PathBuf),
    /// POST JSON to this http(s) URL.
    Webhook(String),
}

impl fmt::Debug for SmsChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Log => f.write_str("Log"),
            Self::Outbox(path) => f.debug_tuple("Outbox").field(path).finish(),
            // Provider URLs often carry an API key in the query or user info.
            Self::Webhook(url) => f.debug_tuple("Webhook").field(&redact_url(url)).finish(),
        }
    }
}

/// Validated settings, ready to build adapters from.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// What to do.
    pub command: Command,
    /// HTTP listen address.
    pub bind: SocketAddr,
    /// HTTP worker threads; `None` lets Actix pick one per CPU.
    pub workers: Option<usize>,
    /// Grace period for in-flight requests at shutdown.
    pub shutdown_timeout: Duration,
    /// Database URL, `sqlite:`/`sqlite://` or `postgres://`/`postgresql://`. May hold a password:
    /// log [`Settings::database_url_for_logs`] instead.
    pub database_url: String,
    /// Maximum pooled database connections (at least 1).
    pub db_pool_size: u32,
    /// Wait for a pooled connection.
    pub db_timeout: Duration,
    /// The SMS gateway.
    pub sms: SmsChoice,
    /// SMS codes per client IP per hour (at least 1).
    pub sms_per_ip_hourly: u32,
    /// SMS codes per hour for the whole service (at least 1).
    pub sms_global_hourly: u32,
    /// Log line format.
    pub log_format: LogFormat,
    /// EnvFilter directives, already checked to parse.
    pub log_filter: String,
    /// Session cookie name.
    pub cookie_name: String,
    /// Whether the session cookie is `Secure`.
    pub cookie_secure: bool,
    /// Session cookie `Domain`, if any.
    pub cookie_domain: Option<String>,
    /// Session idle lifetime (non-zero).
    pub session_idle: Duration,
    /// Session absolute lifetime, at least `session_idle`.
    pub session_max: Duration,
    /// bcrypt cost of new hashes, within [`MIN_BCRYPT_COST`]..=[`MAX_BCRYPT_COST`].
    pub bcrypt_cost: u32,
    /// Concurrent password hashes (at least 1).
    pub hash_concurrency: usize,
    /// Invite cooldown while my request is pending.
    pub invite_pending_cooldown: Duration,
    /// Invite cooldown after they ignored my request.
    pub invite_ignored_cooldown: Duration,
    /// Phones per account per day (upload and lookup).
    pub phones_per_day: u32,
    /// Rows per list answer (at least 1).
    pub list_cap: u32,
}

impl Settings {
    /// The database URL with any password and query removed, safe to log.
    pub fn database_url_for_logs(&self) -> String {
        redact_url(&self.database_url)
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("command", &self.command)
            .field("bind", &self.bind)
            .field("workers", &self.workers)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("database_url", &self.database_url_for_logs())
            .field("db_pool_size", &self.db_pool_size)
            .field("db_timeout", &self.db_timeout)
            .field("sms", &self.sms)
            .field("sms_per_ip_hourly", &self.sms_per_ip_hourly)
            .field("sms_global_hourly", &self.sms_global_hourly)
            .field("log_format", &self.log_format)
            .field("log_filter", &self.log_filter)
            .field("cookie_name", &self.cookie_name)
            .field("cookie_secure", &self.cookie_secure)
            .field("cookie_domain", &self.cookie_domain)
            .field("session_idle", &self.session_idle)
            .field("session_max", &self.session_max)
            .field("bcrypt_cost", &self.bcrypt_cost)
            .field("hash_concurrency", &self.hash_concurrency)
            .field("invite_pending_cooldown", &self.invite_pending_cooldown)
            .field("invite_ignored_cooldown", &self.invite_ignored_cooldown)
            .field("phones_per_day", &self.phones_per_day)
            .field("list_cap", &self.list_cap)
            .finish()
    }
}

/// A setting that parsed but makes no sense. Each message names the environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A number outside its allowed range.
    #[error("{var} must be between {min} and {max}, got {got}")]
    OutOfRange {
        /// The environment variable.
        var: &'static str,
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
        /// The value given.
        got: u64,
    },
    /// A setting required by another one is missing.
    #[error("{var} must be set when {because}")]
    Missing {
        /// The missing environment variable.
        var: &'static str,
        /// The setting that requires it.
        because: &'static str,
    },
    /// A value of the wrong shape.
    #[error("{var} {reason}")]
    Invalid {
        /// The environment variable.
        var: &'static str,
        /// What is wrong, without echoing values that may be secret.
        reason: String,
    },
}

impl ConfigError {
    fn invalid(var: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            var,
            reason: reason.into(),
        }
    }
}

fn at_least(var: &'static str, min: u64, got: u64) -> Result<(), ConfigError> {
    if got < min {
        return Err(ConfigError::OutOfRange {
            var,
            min,
            max: u64::MAX,
            got,
        });
    }
    Ok(())
}

fn widen(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Cli {
    /// The subcommand to run; `serve` when none was given.
    pub fn action(&self) -> Command {
        self.command.unwrap_or(Command::Serve)
    }

    /// Checks every option and resolves defaults into [`Settings`].
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let o = &self.options;

        if let Some(workers) = o.workers {
            at_least("KITH_WORKERS", 1, widen(workers))?;
        }
        validate_database_url(&o.database_url)?;
        at_least("KITH_DB_POOL_SIZE", 1, u64::from(o.db_pool_size))?;
        at_least("KITH_DB_TIMEOUT_MS", 1, o.db_timeout_ms)?;
        at_least("KITH_SMS_PER_IP_HOURLY", 1, u64::from(o.sms_per_ip_hourly))?;
        at_least("KITH_SMS_GLOBAL_HOURLY", 1, u64::from(o.sms_global_hourly))?;
        let sms = resolve_sms(o)?;

        tracing_subscriber::EnvFilter::try_new(&o.log).map_err(|e| {
            ConfigError::invalid("KITH_LOG", format!("is not a valid log filter: {e}"))
        })?;

        validate_cookie_name(&o.cookie_name)?;
        let cookie_domain = match o.cookie_domain.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(domain) => {
                validate_cookie_domain(domain)?;
                Some(domain.to_owned())
            }
        };

        at_least("KITH_SESSION_IDLE_SECS", 1, o.session_idle_secs)?;
        if o.session_max_secs < o.session_idle_secs {
            return Err(ConfigError::invalid(
                "KITH_SESSION_MAX_SECS",
                format!(
                    "must be at least KITH_SESSION_IDLE_SECS ({}), got {}",
                    o.session_idle_secs, o.session_max_secs
                ),
            ));
        }

        if !(MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&o.bcrypt_cost) {
            return Err(ConfigError::OutOfRange {
                var: "KITH_BCRYPT_COST",
                min: u64::from(MIN_BCRYPT_COST),
                max: u64::from(MAX_BCRYPT_COST),
                got: u64::from(o.bcrypt_cost),
            });
        }
        let hash_concurrency = match o.hash_concurrency {
            Some(n) => {
                at_least("KITH_HASH_CONCURRENCY", 1, widen(n))?;
                n
            }
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };

        at_least("KITH_PHONES_PER_DAY", 1, u64::from(o.phones_per_day))?;
        at_least("KITH_LIST_CAP", 1, u64::from(o.list_cap))?;

        Ok(Settings {
            command: self.action(),
            bind: o.bind,
            workers: o.workers,
            shutdown_timeout: Duration::from_secs(o.shutdown_timeout_secs),
            database_url: o.database_url.clone(),
            db_pool_size: o.db_pool_size,
            db_timeout: Duration::from_millis(o.db_timeout_ms),
            sms,
            sms_per_ip_hourly: o.sms_per_ip_hourly,
            sms_global_hourly: o.sms_global_hourly,
            log_format: o.log_format,
            log_filter: o.log.clone(),
            cookie_name: o.cookie_name.clone(),
            cookie_secure: o.cookie_secure,
            cookie_domain,
            session_idle: Duration::from_secs(o.session_idle_secs),
            session_max: Duration::from_secs(o.session_max_secs),
            bcrypt_cost: o.bcrypt_cost,
            hash_concurrency,
            invite_pending_cooldown: Duration::from_secs(o.invite_pending_cooldown_secs),
            invite_ignored_cooldown: Duration::from_secs(o.invite_ignored_cooldown_secs),
            phones_per_day: o.phones_per_day,
            list_cap: o.list_cap,
        })
    }
}

fn validate_database_url(url: &str) -> Result<(), ConfigError> {
    const PREFIXES: [&str; 3] = ["sqlite:", "postgres://", "postgresql://"];
    let Some(prefix) = PREFIXES.iter().find(|p| url.starts_with(**p)) else {
        // The URL itself is not echoed: it may carry a password.
        return Err(ConfigError::invalid(
            "KITH_DATABASE_URL",
            "must start with sqlite://, sqlite:, postgres:// or postgresql://",
        ));
    };
    let rest = url[prefix.len()..].trim_start_matches("//");
    if rest.is_empty() {
        return Err(ConfigError::invalid(
            "KITH_DATABASE_URL",
            "names no database",
        ));
    }
    Ok(())
}

/// An explicit KITH_SMS wins; otherwise a configured outbox path selects the outbox, so test
/// harnesses only need to set KITH_SMS_OUTBOX.
fn resolve_sms(o: &Options) -> Result<SmsChoice, ConfigError> {
    let kind = o.sms.unwrap_or(if o.sms_outbox.is_some() {
        SmsKind::Outbox
    } else {
        SmsKind::Log
    });
    match kind {
        SmsKind::Log => Ok(SmsChoice::Log),
        SmsKind::Outbox => match &o.sms_outbox {
            Some(path) if !path.as_os_str().is_empty() => Ok(SmsChoice::Outbox(path.clone())),
            _ => Err(ConfigError::Missing {
                var: "KITH_SMS_OUTBOX",
                because: "KITH_SMS=outbox",
            }),
        },
        SmsKind::Webhook => {
            let url = o
                .sms_webhook_url
                .as_deref()
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .ok_or(ConfigError::Missing {
                    var: "KITH_SMS_WEBHOOK_URL",
                    because: "KITH_SMS=webhook",
                })?;
            validate_http_url(url)?;
            Ok(SmsChoice::Webhook(url.to_owned()))
        }
    }
}

fn validate_http_url(url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            ConfigError::invalid("KITH_SMS_WEBHOOK_URL", "must be an http:// or https:// URL")
        })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(ConfigError::invalid("KITH_SMS_WEBHOOK_URL", "has no host"));
    }
    if url.chars().any(char::is_whitespace) {
        return Err(ConfigError::invalid(
            "KITH_SMS_WEBHOOK_URL",
            "must not contain whitespace",
        ));
    }
    Ok(())
}

/// RFC 6265 cookie names are HTTP tokens; anything else breaks the Set-Cookie header.
fn validate_cookie_name(name: &str) -> Result<(), ConfigError> {
    const SEPARATORS: &str = "()<>@,;:\\\"/[]?={} \t";
    if name.is_empty() {
        return Err(ConfigError::invalid(
            "KITH_COOKIE_NAME",
            "must not be empty",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_graphic() && !SEPARATORS.contains(c))
    {
        return Err(ConfigError::invalid(
            "KITH_COOKIE_NAME",
            format!("must be an HTTP token (letters, digits, and !#$%&'*+-.^_`|~), got {name:?}"),
        ));
    }
    Ok(())
}

fn validate_cookie_domain(domain: &str) -> Result<(), ConfigError> {
    let ok = domain
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !ok {
        return Err(ConfigError::invalid(
            "KITH_COOKIE_DOMAIN",
            format!("must be a host name, got {domain:?}"),
        ));
    }
    Ok(())
}

/// Drops user info and query from a URL so passwords and API keys stay out of logs.
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => match url.find(':') {
            Some(i) => (&url[..=i], &url[i + 1..]),
            None => ("", url),
        },
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let (path_part, dropped) = rest.split_at(end);
    let auth_end = path_part.find('/').unwrap_or(path_part.len());
    let (authority, path) = path_part.split_at(auth_end);
    let authority = match authority.rfind('@') {
        Some(i) => format!("***@{}", &authority[i + 1..]),
        None => authority.to_owned(),
    };
    let suffix = if dropped.is_empty() { "" } else { "?***" };
    format!("{scheme}{authority}{path}{suffix}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        let mut all = vec!["kith"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    fn settings(args: &[&str]) -> Result<Settings, ConfigError> {
        parse(args).settings()
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.command, Command::Serve);
        assert_eq!(s.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.database_url, "sqlite://kith.db");
        assert_eq!(s.sms, SmsChoice::Log);
        assert_eq!(s.log_format, LogFormat::Pretty);
        assert_eq!(s.log_filter, "info");
        assert_eq!(s.cookie_name, "kith_session");
        assert!(!s.cookie_secure);
        assert_eq!(s.cookie_domain, None);
        assert_eq!(s.session_idle, Duration::from_secs(30 * 86_400));
        assert_eq!(s.session_max, Duration::from_secs(90 * 86_400));
        assert_eq!(s.bcrypt_cost, 12);
        assert!(s.hash_concurrency >= 1);
        assert_eq!(s.sms_per_ip_hourly, 20);
        assert_eq!(s.sms_global_hourly, 1000);
        assert_eq!(s.db_pool_size, 16);
        assert_eq!(s.db_timeout, Duration::from_millis(5000));
        assert_eq!(s.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(s.workers, None);
    }

    #[test]
    fn subcommands_and_global_flags() {
        assert_eq!(parse(&["migrate"]).action(), Command::Migrate);
        assert_eq!(parse(&["serve"]).action(), Command::Serve);
        let s = settings(&["migrate", "--database-url", "postgres://u:p@db/kith"]).unwrap();
        assert_eq!(s.command, Command::Migrate);
        assert_eq!(s.database_url, "postgres://u:p@db/kith");
        assert!(Cli::try_parse_from(["kith", "frobnicate"]).is_err());
    }

    #[test]
    fn flags_override_defaults() {
        let s = settings(&[
            "--bind",
            "0.0.0.0:9000",
            "--log-format",
            "json",
            "--log",
            "debug,kith_store=trace",
            "--cookie-secure",
            "--cookie-domain",
            "example.com",
            "--bcrypt-cost",
            "10",
            "--hash-concurrency",
            "3",
            "--workers",
            "2",
        ])
        .unwrap();
        assert_eq!(s.bind.port(), 9000);
        assert_eq!(s.log_format, LogFormat::Json);
        assert!(s.cookie_secure);
        assert_eq!(s.cookie_domain.as_deref(), Some("example.com"));
        assert_eq!(s.bcrypt_cost, 10);
        assert_eq!(s.hash_concurrency, 3);
        assert_eq!(s.workers, Some(2));
        // The flag takes no value, so a subcommand after it is not swallowed.
        let s = settings(&["--cookie-secure", "migrate"]).unwrap();
        assert!(s.cookie_secure);
        assert_eq!(s.command, Command::Migrate);
    }

    #[test]
    fn bad_bind_is_a_parse_error() {
        assert!(Cli::try_parse_from(["kith", "--bind", "localhost"]).is_err());
    }

    #[test]
    fn bcrypt_cost_range() {
        let err = settings(&["--bcrypt-cost", "4"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "KITH_BCRYPT_COST must be between 10 and 16, got 4"
        );
        assert!(settings(&["--bcrypt-cost", "17"]).is_err());
        assert!(settings(&["--bcrypt-cost", "16"]).is_ok());
    }

    #[test]
    fn database_url_schemes() {
        for ok in [
            "sqlite://kith.db",
            "sqlite::memory:",
            "sqlite:x.db",
            "postgres://h/d",
            "postgresql://h/d",
        ] {
            assert!(settings(&["--database-url", ok]).is_ok(), "{ok}");
        }
        let err = settings(&["--database-url", "mysql://root:hunter2@h/d"]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("KITH_DATABASE_URL"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(settings(&["--database-url", "sqlite://"]).is_err());
    }

    #[test]
    fn sms_choice() {
        assert_eq!(
            settings(&["--sms-outbox", "/tmp/o.jsonl"]).unwrap().sms,
            SmsChoice::Outbox("/tmp/o.jsonl".into())
        );
        assert_eq!(
            settings(&["--sms", "log", "--sms-outbox", "/tmp/o.jsonl"])
                .unwrap()
                .sms,
            SmsChoice::Log
        );
        assert_eq!(
            settings(&["--sms", "outbox"]).unwrap_err().to_string(),
            "KITH_SMS_OUTBOX must be set when KITH_SMS=outbox"
        );
        assert_eq!(
            settings(&["--sms", "webhook"]).unwrap_err().to_string(),
            "KITH_SMS_WEBHOOK_URL must be set when KITH_SMS=webhook"
        );
        assert_eq!(
            settings(&[
                "--sms",
                "webhook",
                "--sms-webhook-url",
                "https://sms.example/send?key=k"
            ])
            .unwrap()
            .sms,
            SmsChoice::Webhook("https://sms.example/send?key=k".into())
        );
        for bad in ["ftp://x", "http://", "https://:80/x", "sms.example"] {
            let err = settings(&["--sms", "webhook", "--sms-webhook-url", bad]).unwrap_err();
            assert!(
                err.to_string().starts_with("KITH_SMS_WEBHOOK_URL"),
                "{bad}: {err}"
            );
        }
        assert!(Cli::try_parse_from(["kith", "--sms", "carrier-pigeon"]).is_err());
    }

    #[test]
    fn sessions_and_limits() {
        let err =
            settings(&["--session-idle-secs", "100", "--session-max-secs", "50"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "KITH_SESSION_MAX_SECS must be at least KITH_SESSION_IDLE_SECS (100), got 50"
        );
        assert!(settings(&["--session-idle-secs", "0", "--session-max-secs", "0"]).is_err());
        assert!(settings(&["--session-idle-secs", "60", "--session-max-secs", "60"]).is_ok());
        assert!(settings(&["--hash-concurrency", "0"])
            .unwrap_err()
            .to_string()
            .starts_with("KITH_HASH_CONCURRENCY"));
        assert!(settings(&["--db-pool-size", "0"]).is_err());
        assert!(settings(&["--sms-per-ip-hourly", "0"]).is_err());
        assert!(settings(&["--workers", "0"]).is_err());
    }

    #[test]
    fn cookie_and_log_validation() {
        assert!(settings(&["--cookie-name", "bad name"]).is_err());
        assert!(settings(&["--cookie-name", ""]).is_err());
        assert!(settings(&["--cookie-domain", "a;b"]).is_err());
        assert!(settings(&["--log", "info,[[[="])
            .unwrap_err()
            .to_string()
            .starts_with("KITH_LOG"));
    }

    #[test]
    fn debug_redacts_secrets() {
        let s = settings(&[
            "--database-url",
            "postgres://kith:hunter2@db:5432/kith?sslmode=require",
            "--sms",
            "webhook",
            "--sms-webhook-url",
            "https://user:pw@sms.example/send?api_key=secret",
        ])
        .unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("secret") && !shown.contains(":pw@"),
            "{shown}"
        );
        assert_eq!(s.database_url_for_logs(), "postgres://***@db:5432/kith?***");
        assert_eq!(redact_url("sqlite://kith.db"), "sqlite://kith.db");
    }

    #[test]
    fn help_documents_every_variable() {
        let help = Cli::command().render_long_help().to_string();
        for var in [
            "KITH_BIND",
            "KITH_DATABASE_URL",
            "KITH_SMS",
            "KITH_SMS_OUTBOX",
            "KITH_SMS_WEBHOOK_URL",
            "KITH_LOG_FORMAT",
            "KITH_LOG",
            "KITH_COOKIE_NAME",
            "KITH_COOKIE_SECURE",
            "KITH_COOKIE_DOMAIN",
            "KITH_SESSION_IDLE_SECS",
            "KITH_SESSION_MAX_SECS",
            "KITH_BCRYPT_COST",
            "KITH_HASH_CONCURRENCY",
            "KITH_SMS_PER_IP_HOURLY",
            "KITH_SMS_GLOBAL_HOURLY",
            "KITH_DB_POOL_SIZE",
            "KITH_DB_TIMEOUT_MS",
            "KITH_SHUTDOWN_TIMEOUT_SECS",
            "KITH_WORKERS",
        ] {
            assert!(
                help.contains(&format!("env: {var}")),
                "{var} missing from --help"
            );
        }
        for sub in ["serve", "migrate"] {
            assert!(help.contains(sub), "{sub} missing from --help");
        }
    }
}
