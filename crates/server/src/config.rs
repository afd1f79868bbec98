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
/// The longest `KITH_SESSION_CACHE_SECS`: how long another process's revocation may lag here.
pub const MAX_SESSION_CACHE_SECS: u64 = 60;
/// The longest `KITH_PROFILE_CACHE_SECS`: how long another process's profile change may lag here.
pub const MAX_PROFILE_CACHE_SECS: u64 = 60;

/// The most PostgreSQL connections one HTTP worker thread may open for hot reads. Each is a
/// server process; PostgreSQL's default `max_connections` is 100.
pub const MAX_WORKER_CONNECTIONS: u32 = 32;

/// Most transactions committing relationship transitions together at once.
pub const MAX_TRANSITION_BATCHES: u32 = 16;
/// The most `KITH_LIST_CACHE_ROWS`: about a gigabyte of friend-list rows.
pub const MAX_LIST_CACHE_ROWS: u64 = 1_000_000;

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
    /// Check the database's invariants (relationship pairs, sync versions, orphan rows), print
    /// the report, and exit non-zero if any is broken.
    Check,
    /// Print the OpenAPI 3.1 document of every API (what `GET /openapi.json` serves) and exit.
    #[command(name = "openapi")]
    OpenApi,
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

/// Which IM token issuer `KITH_IM_TOKEN` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ImTokenKind {
    /// Sign tokens here (HMAC-SHA256 with `KITH_IM_TOKEN_SECRET`), for an IM gateway of the
    /// deployment's own that checks them.
    #[default]
    Local,
    /// Ask RongCloud's server API (`KITH_RONGCLOUD_*`).
    Rongcloud,
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

    /// PostgreSQL: connections each HTTP worker thread opens for the hot reads (sessions,
    /// profiles, relationship lists and pairs) and the relationship transitions, which then skip
    /// the hand-off to the pool's threads. `0`: every call uses the pool.
    #[arg(
        long,
        env = "KITH_DB_WORKER_CONNECTIONS",
        default_value_t = 4,
        global = true,
        help_heading = "Database"
    )]
    pub db_worker_connections: u32,

    /// SQLite, and PostgreSQL with worker connections: most transactions at once that commit
    /// the relationship transitions (friend requests, follows, blocks, remarks) asked for at the
    /// same time together, each transaction up to 64 of them. `0`: each transition commits in
    /// a transaction of its own. [default: 2 on PostgreSQL, 1 on SQLite]
    #[arg(
        long,
        env = "KITH_DB_TRANSITION_BATCHES",
        global = true,
        help_heading = "Database"
    )]
    pub db_transition_batches: Option<u32>,

    /// Rows of friend-list pages (friends, requests) kept in memory and served again while
    /// their owner's list is unchanged (checked with one keyed read per request, so never stale,
    /// whichever process wrote). About 1 KB a row (docs/benchmarks.md). `0`: read every page
    /// from the database.
    #[arg(
        long,
        env = "KITH_LIST_CACHE_ROWS",
        default_value_t = kith_store::DEFAULT_LIST_CACHE_ROWS,
        global = true,
        help_heading = "Database"
    )]
    pub list_cache_rows: usize,

    /// Milliseconds to wait for a free database connection before answering 503.
    #[arg(
        long,
        env = "KITH_DB_TIMEOUT_MS",
        default_value_t = 5000,
        global = true,
        help_heading = "Database"
    )]
    pub db_timeout_ms: u64,

    /// Milliseconds one database call may run once it has a connection before answering 503
    /// (the backstop for a database that stops answering without closing the connection).
    #[arg(
        long,
        env = "KITH_DB_QUERY_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true,
        help_heading = "Database"
    )]
    pub db_query_timeout_ms: u64,

    /// Requests served at once; KITH_SHED_QUEUE more wait up to KITH_SHED_WAIT_MS, the rest
    /// answer 503 with Retry-After [default: 4 × KITH_DB_POOL_SIZE]. `0`: no limit.
    #[arg(
        long,
        env = "KITH_MAX_INFLIGHT",
        global = true,
        help_heading = "Server"
    )]
    pub max_inflight: Option<usize>,

    /// Milliseconds a request over KITH_MAX_INFLIGHT may wait for a slot before it is shed.
    #[arg(
        long,
        env = "KITH_SHED_WAIT_MS",
        default_value_t = 100,
        global = true,
        help_heading = "Server"
    )]
    pub shed_wait_ms: u64,

    /// Requests that may wait for a slot when KITH_MAX_INFLIGHT are running
    /// [default: 4 × KITH_MAX_INFLIGHT].
    #[arg(long, env = "KITH_SHED_QUEUE", global = true, help_heading = "Server")]
    pub shed_queue: Option<usize>,

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

    /// Seconds a session read from the database is trusted without reading it again (0 to 60;
    /// 0: every request reads it). A session revoked by another kith process sharing the
    /// database keeps working here for up to this long; one revoked here stops at once.
    #[arg(
        long,
        env = "KITH_SESSION_CACHE_SECS",
        default_value_t = 5,
        global = true,
        help_heading = "Sessions"
    )]
    pub session_cache_secs: u64,

    /// Seconds a user read from the database is shown by `GET /user/{id}` without reading it
    /// again (0 to 60; 0: every request reads it). A profile changed through another kith
    /// process sharing the database shows here within this long; one changed here, at once.
    #[arg(
        long,
        env = "KITH_PROFILE_CACHE_SECS",
        default_value_t = 5,
        global = true,
        help_heading = "Sessions"
    )]
    pub profile_cache_secs: u64,

    /// bcrypt cost of new password hashes (10 to 16). Older, cheaper hashes are upgraded at login.
    #[arg(
        long,
        env = "KITH_BCRYPT_COST",
        default_value_t = 12,
        global = true,
        help_heading = "Passwords"
    )]
    pub bcrypt_cost: u32,

    /// Most password hashes computed at once (default: half the CPUs, at least one), so a burst
    /// of logins cannot starve the server.
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

    /// How long incremental-sync change entries are kept, in seconds (default 30 days). A device
    /// offline for longer gets code 4000 and syncs again from version 0.
    #[arg(
        long,
        env = "KITH_SYNC_HORIZON_SECS",
        default_value_t = 30 * 24 * 3600,
        global = true,
        help_heading = "Sync"
    )]
    pub sync_horizon_secs: u64,

    /// How often the sync change log is compacted, in seconds.
    #[arg(
        long,
        env = "KITH_SYNC_COMPACT_EVERY_SECS",
        default_value_t = 3600,
        global = true,
        help_heading = "Sync"
    )]
    pub sync_compact_every_secs: u64,

    /// The most rows one list answer holds; longer lists are cut and linked (`Link: rel="next"`).
    #[arg(
        long,
        env = "KITH_LIST_CAP",
        default_value_t = 1000,
        global = true,
        help_heading = "Relationships"
    )]
    pub list_cap: u32,

    /// The shortest group name, in characters.
    #[arg(
        long,
        env = "KITH_GROUP_NAME_MIN",
        default_value_t = 2,
        global = true,
        help_heading = "Groups"
    )]
    pub group_name_min: u32,

    /// The longest group name, in characters.
    #[arg(
        long,
        env = "KITH_GROUP_NAME_MAX",
        default_value_t = 32,
        global = true,
        help_heading = "Groups"
    )]
    pub group_name_max: u32,

    /// The longest group bulletin, in characters.
    #[arg(
        long,
        env = "KITH_GROUP_BULLETIN_MAX",
        default_value_t = 1024,
        global = true,
        help_heading = "Groups"
    )]
    pub group_bulletin_max: u32,

    /// The most members one group holds, its creator included.
    #[arg(
        long,
        env = "KITH_GROUP_MAX_MEMBERS",
        default_value_t = 500,
        global = true,
        help_heading = "Groups"
    )]
    pub group_max_members: u32,

    /// The most groups one user belongs to.
    #[arg(
        long,
        env = "KITH_GROUP_MAX_PER_USER",
        default_value_t = 500,
        global = true,
        help_heading = "Groups"
    )]
    pub group_max_per_user: u32,

    /// Where IM tokens (`/user/get_token`) come from.
    #[arg(
        long,
        env = "KITH_IM_TOKEN",
        value_enum,
        default_value_t = ImTokenKind::Local,
        global = true,
        help_heading = "Tokens"
    )]
    pub im_token: ImTokenKind,

    /// Key of locally signed IM tokens, shared with the IM gateway that checks them (at least
    /// 16 bytes). Unset: a random key kept in the database (setting `im_token_key`).
    #[arg(
        long,
        env = "KITH_IM_TOKEN_SECRET",
        hide_env_values = true,
        global = true,
        help_heading = "Tokens"
    )]
    pub im_token_secret: Option<String>,

    /// Lifetime of locally signed IM tokens, in seconds.
    #[arg(
        long,
        env = "KITH_IM_TOKEN_TTL_SECS",
        default_value_t = 24 * 3600,
        global = true,
        help_heading = "Tokens"
    )]
    pub im_token_ttl_secs: u64,

    /// RongCloud app key (KITH_IM_TOKEN=rongcloud).
    #[arg(
        long,
        env = "KITH_RONGCLOUD_APP_KEY",
        global = true,
        help_heading = "Tokens"
    )]
    pub rongcloud_app_key: Option<String>,

    /// RongCloud app secret (KITH_IM_TOKEN=rongcloud).
    #[arg(
        long,
        env = "KITH_RONGCLOUD_APP_SECRET",
        hide_env_values = true,
        global = true,
        help_heading = "Tokens"
    )]
    pub rongcloud_app_secret: Option<String>,

    /// Base URL of RongCloud's server API, http:// only (this build has no TLS client: point
    /// it at a TLS-terminating egress proxy).
    #[arg(
        long,
        env = "KITH_RONGCLOUD_BASE_URL",
        global = true,
        help_heading = "Tokens"
    )]
    pub rongcloud_base_url: Option<String>,

    /// Milliseconds to wait for RongCloud before answering 503.
    #[arg(
        long,
        env = "KITH_RONGCLOUD_TIMEOUT_MS",
        default_value_t = 5000,
        global = true,
        help_heading = "Tokens"
    )]
    pub rongcloud_timeout_ms: u64,

    /// Qiniu access key. With the secret key, bucket and domain it enables
    /// `/user/get_image_token`.
    #[arg(
        long,
        env = "KITH_QINIU_ACCESS_KEY",
        global = true,
        help_heading = "Tokens"
    )]
    pub qiniu_access_key: Option<String>,

    /// Qiniu secret key.
    #[arg(
        long,
        env = "KITH_QINIU_SECRET_KEY",
        hide_env_values = true,
        global = true,
        help_heading = "Tokens"
    )]
    pub qiniu_secret_key: Option<String>,

    /// Qiniu bucket uploads go to.
    #[arg(
        long,
        env = "KITH_QINIU_BUCKET",
        global = true,
        help_heading = "Tokens"
    )]
    pub qiniu_bucket: Option<String>,

    /// Domain uploaded files are served from, handed to clients.
    #[arg(
        long,
        env = "KITH_QINIU_DOMAIN",
        global = true,
        help_heading = "Tokens"
    )]
    pub qiniu_domain: Option<String>,

    /// Lifetime of Qiniu upload tokens, in seconds.
    #[arg(
        long,
        env = "KITH_QINIU_TTL_SECS",
        default_value_t = 3600,
        global = true,
        help_heading = "Tokens"
    )]
    pub qiniu_ttl_secs: u64,

    /// `send_code` calls one client IP may make per hour before each needs a solved image
    /// captcha: a number (0: always), or `off`.
    #[arg(
        long,
        env = "KITH_CAPTCHA_AFTER",
        default_value = "10",
        global = true,
        help_heading = "Captcha"
    )]
    pub captcha_after: String,

    /// DEVELOPMENT ONLY: append the answer of every captcha to this file (one JSON line each),
    /// for black-box tests. Whoever reads it passes every captcha.
    #[arg(
        long,
        env = "KITH_CAPTCHA_TEST_OUTBOX",
        global = true,
        help_heading = "Captcha"
    )]
    pub captcha_test_outbox: Option<PathBuf>,

    /// Public base URL of this server (e.g. `https://kith.example`), for the absolute URLs it
    /// hands out (captcha images). Unset: taken from each request's Host.
    #[arg(long, env = "KITH_PUBLIC_URL", global = true, help_heading = "Server")]
    pub public_url: Option<String>,
}

/// Where IM tokens come from, with what that needs.
#[derive(Clone, PartialEq, Eq)]
pub enum ImTokenChoice {
    /// Signed here.
    Local {
        /// The configured key; `None` for the per-installation key in the database.
        secret: Option<String>,
        /// Token lifetime.
        ttl: Duration,
    },
    /// From RongCloud.
    RongCloud(crate::tokens::RongCloudConfig),
}

impl fmt::Debug for ImTokenChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local { secret, ttl } => f
                .debug_struct("Local")
                // Labelled "key": the word "secret" must not appear in logged settings.
                .field("key", &secret.as_ref().map(|_| "***"))
                .field("ttl", ttl)
                .finish(),
            Self::RongCloud(config) => f.debug_tuple("RongCloud").field(config).finish(),
        }
    }
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
    /// PostgreSQL connections per worker thread for hot reads and transitions; `0`: none.
    pub db_worker_connections: u32,
    /// Most transactions committing relationship transitions together; `0`: none; `None`: the
    /// backend's default.
    pub db_transition_batches: Option<u32>,
    /// Rows of friend-list pages kept in memory; `0`: none.
    pub list_cache_rows: usize,
    /// Wait for a pooled connection.
    pub db_timeout: Duration,
    /// How long one database call may run once it has a connection.
    pub db_query_timeout: Duration,
    /// Requests served at once; `None`: no limit.
    pub max_inflight: Option<usize>,
    /// How long a request over the limit waits for a slot before it is shed.
    pub shed_wait: Duration,
    /// How many requests may wait for a slot; `None`: four per slot.
    pub shed_queue: Option<usize>,
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
    /// How long a session read is trusted, at most [`MAX_SESSION_CACHE_SECS`].
    pub session_cache: Duration,
    /// How long a profile read is shown again, at most [`MAX_PROFILE_CACHE_SECS`].
    pub profile_cache: Duration,
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
    /// Group limits (names, bulletins, members per group, groups per user).
    pub group_policy: kith_domain::group::GroupPolicy,
    /// How long sync change entries are kept (non-zero).
    pub sync_horizon: Duration,
    /// How often the change log is compacted (non-zero).
    pub sync_compact_every: Duration,
    /// The IM token issuer.
    pub im_token: ImTokenChoice,
    /// Qiniu upload tokens, when configured.
    pub qiniu: Option<crate::tokens::QiniuConfig>,
    /// Free `send_code` calls per IP and hour before a captcha is needed; `None`: never needed.
    pub captcha_after: Option<u32>,
    /// Development-only file of captcha answers.
    pub captcha_test_outbox: Option<PathBuf>,
    /// Public base URL, without a trailing slash.
    pub public_url: Option<String>,
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
            .field("db_worker_connections", &self.db_worker_connections)
            .field("db_transition_batches", &self.db_transition_batches)
            .field("list_cache_rows", &self.list_cache_rows)
            .field("db_timeout", &self.db_timeout)
            .field("db_query_timeout", &self.db_query_timeout)
            .field("max_inflight", &self.max_inflight)
            .field("shed_wait", &self.shed_wait)
            .field("shed_queue", &self.shed_queue)
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
            .field("session_cache", &self.session_cache)
            .field("profile_cache", &self.profile_cache)
            .field("bcrypt_cost", &self.bcrypt_cost)
            .field("hash_concurrency", &self.hash_concurrency)
            .field("invite_pending_cooldown", &self.invite_pending_cooldown)
            .field("invite_ignored_cooldown", &self.invite_ignored_cooldown)
            .field("phones_per_day", &self.phones_per_day)
            .field("list_cap", &self.list_cap)
            .field("group_policy", &self.group_policy)
            .field("sync_horizon", &self.sync_horizon)
            .field("sync_compact_every", &self.sync_compact_every)
            .field("im_token", &self.im_token)
            .field("qiniu", &self.qiniu)
            .field("captcha_after", &self.captcha_after)
            .field("captcha_test_outbox", &self.captcha_test_outbox)
            .field("public_url", &self.public_url)
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

fn at_most(var: &'static str, max: u64, got: u64) -> Result<(), ConfigError> {
    if got > max {
        return Err(ConfigError::OutOfRange {
            var,
            min: 0,
            max,
            got,
        });
    }
    Ok(())
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
        at_most(
            "KITH_DB_WORKER_CONNECTIONS",
            MAX_WORKER_CONNECTIONS.into(),
            o.db_worker_connections.into(),
        )?;
        if let Some(batches) = o.db_transition_batches {
            at_most(
                "KITH_DB_TRANSITION_BATCHES",
                MAX_TRANSITION_BATCHES.into(),
                batches.into(),
            )?;
        }
        at_most(
            "KITH_LIST_CACHE_ROWS",
            MAX_LIST_CACHE_ROWS,
            u64::try_from(o.list_cache_rows).unwrap_or(u64::MAX),
        )?;
        at_least("KITH_DB_TIMEOUT_MS", 1, o.db_timeout_ms)?;
        at_least("KITH_DB_QUERY_TIMEOUT_MS", 1, o.db_query_timeout_ms)?;
        // Four requests per pooled connection keep the pool busy while one batch finishes.
        let max_inflight = match o.max_inflight {
            Some(0) => None,
            Some(n) => Some(n),
            None => Some(
                usize::try_from(o.db_pool_size)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(4),
            ),
        };
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

        at_most(
            "KITH_SESSION_CACHE_SECS",
            MAX_SESSION_CACHE_SECS,
            o.session_cache_secs,
        )?;
        at_most(
            "KITH_PROFILE_CACHE_SECS",
            MAX_PROFILE_CACHE_SECS,
            o.profile_cache_secs,
        )?;

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
            None => default_hash_concurrency(
                std::thread::available_parallelism().map_or(1, usize::from),
            ),
        };

        at_least("KITH_PHONES_PER_DAY", 1, u64::from(o.phones_per_day))?;
        at_least("KITH_LIST_CAP", 1, u64::from(o.list_cap))?;
        at_least("KITH_SYNC_HORIZON_SECS", 1, o.sync_horizon_secs)?;
        let group_policy = resolve_group_policy(o)?;
        at_least("KITH_SYNC_COMPACT_EVERY_SECS", 1, o.sync_compact_every_secs)?;
        let im_token = resolve_im_token(o)?;
        let qiniu = resolve_qiniu(o)?;
        let captcha_after = parse_captcha_after(&o.captcha_after)?;
        let public_url = match o.public_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => {
                validate_http_url("KITH_PUBLIC_URL", url)?;
                Some(url.trim_end_matches('/').to_owned())
            }
        };

        Ok(Settings {
            command: self.action(),
            bind: o.bind,
            workers: o.workers,
            shutdown_timeout: Duration::from_secs(o.shutdown_timeout_secs),
            database_url: o.database_url.clone(),
            db_pool_size: o.db_pool_size,
            db_worker_connections: o.db_worker_connections,
            db_transition_batches: o.db_transition_batches,
            list_cache_rows: o.list_cache_rows,
            db_timeout: Duration::from_millis(o.db_timeout_ms),
            db_query_timeout: Duration::from_millis(o.db_query_timeout_ms),
            max_inflight,
            shed_wait: Duration::from_millis(o.shed_wait_ms),
            shed_queue: o.shed_queue,
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
            session_cache: Duration::from_secs(o.session_cache_secs),
            profile_cache: Duration::from_secs(o.profile_cache_secs),
            bcrypt_cost: o.bcrypt_cost,
            hash_concurrency,
            invite_pending_cooldown: Duration::from_secs(o.invite_pending_cooldown_secs),
            invite_ignored_cooldown: Duration::from_secs(o.invite_ignored_cooldown_secs),
            phones_per_day: o.phones_per_day,
            list_cap: o.list_cap,
            group_policy,
            sync_horizon: Duration::from_secs(o.sync_horizon_secs),
            sync_compact_every: Duration::from_secs(o.sync_compact_every_secs),
            im_token,
            qiniu,
            captcha_after,
            captcha_test_outbox: o.captcha_test_outbox.clone(),
            public_url,
        })
    }
}

/// The group limits: every one at least 1, the name range not empty, and a group able to hold
/// more than its creator.
fn resolve_group_policy(o: &Options) -> Result<kith_domain::group::GroupPolicy, ConfigError> {
    at_least("KITH_GROUP_NAME_MIN", 1, u64::from(o.group_name_min))?;
    at_least(
        "KITH_GROUP_NAME_MAX",
        u64::from(o.group_name_min),
        u64::from(o.group_name_max),
    )?;
    at_least(
        "KITH_GROUP_BULLETIN_MAX",
        1,
        u64::from(o.group_bulletin_max),
    )?;
    at_least("KITH_GROUP_MAX_MEMBERS", 2, u64::from(o.group_max_members))?;
    at_least(
        "KITH_GROUP_MAX_PER_USER",
        1,
        u64::from(o.group_max_per_user),
    )?;
    let chars = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
    Ok(kith_domain::group::GroupPolicy {
        name_min_chars: chars(o.group_name_min),
        name_max_chars: chars(o.group_name_max),
        bulletin_max_chars: chars(o.group_bulletin_max),
        max_members: o.group_max_members,
        max_groups_per_user: o.group_max_per_user,
    })
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
            validate_http_url("KITH_SMS_WEBHOOK_URL", url)?;
            Ok(SmsChoice::Webhook(url.to_owned()))
        }
    }
}

fn validate_http_url(var: &'static str, url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| ConfigError::invalid(var, "must be an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(ConfigError::invalid(var, "has no host"));
    }
    if url.chars().any(char::is_whitespace) {
        return Err(ConfigError::invalid(var, "must not contain whitespace"));
    }
    Ok(())
}

/// A set, non-blank value, or `Missing` naming the setting that needs it.
fn required(
    value: &Option<String>,
    var: &'static str,
    because: &'static str,
) -> Result<String, ConfigError> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or(ConfigError::Missing { var, because })
}

fn resolve_im_token(o: &Options) -> Result<ImTokenChoice, ConfigError> {
    at_least("KITH_IM_TOKEN_TTL_SECS", 1, o.im_token_ttl_secs)?;
    match o.im_token {
        ImTokenKind::Local => {
            let secret = o.im_token_secret.clone().filter(|s| !s.is_empty());
            if secret.as_ref().is_some_and(|s| s.len() < 16) {
                return Err(ConfigError::invalid(
                    "KITH_IM_TOKEN_SECRET",
                    "must be at least 16 bytes",
                ));
            }
            Ok(ImTokenChoice::Local {
                secret,
                ttl: Duration::from_secs(o.im_token_ttl_secs),
            })
        }
        ImTokenKind::Rongcloud => {
            const BECAUSE: &str = "KITH_IM_TOKEN=rongcloud";
            let app_key = required(&o.rongcloud_app_key, "KITH_RONGCLOUD_APP_KEY", BECAUSE)?;
            let app_secret = required(
                &o.rongcloud_app_secret,
                "KITH_RONGCLOUD_APP_SECRET",
                BECAUSE,
            )?;
            let base_url = required(&o.rongcloud_base_url, "KITH_RONGCLOUD_BASE_URL", BECAUSE)?;
            validate_http_url("KITH_RONGCLOUD_BASE_URL", &base_url)?;
            if !base_url.starts_with("http://") {
                return Err(ConfigError::invalid(
                    "KITH_RONGCLOUD_BASE_URL",
                    "must be an http:// URL: this build has no TLS client (use a \
                     TLS-terminating egress proxy)",
                ));
            }
            at_least("KITH_RONGCLOUD_TIMEOUT_MS", 1, o.rongcloud_timeout_ms)?;
            Ok(ImTokenChoice::RongCloud(crate::tokens::RongCloudConfig {
                app_key,
                app_secret,
                base_url,
                timeout: Duration::from_millis(o.rongcloud_timeout_ms),
            }))
        }
    }
}

/// Qiniu is on when any of its four settings is given; then all four are needed.
fn resolve_qiniu(o: &Options) -> Result<Option<crate::tokens::QiniuConfig>, ConfigError> {
    let given = [
        &o.qiniu_access_key,
        &o.qiniu_secret_key,
        &o.qiniu_bucket,
        &o.qiniu_domain,
    ];
    if given
        .iter()
        .all(|v| v.as_deref().is_none_or(|v| v.trim().is_empty()))
    {
        return Ok(None);
    }
    const BECAUSE: &str = "any KITH_QINIU_* setting is given";
    at_least("KITH_QINIU_TTL_SECS", 1, o.qiniu_ttl_secs)?;
    Ok(Some(crate::tokens::QiniuConfig {
        access_key: required(&o.qiniu_access_key, "KITH_QINIU_ACCESS_KEY", BECAUSE)?,
        secret_key: required(&o.qiniu_secret_key, "KITH_QINIU_SECRET_KEY", BECAUSE)?,
        bucket: required(&o.qiniu_bucket, "KITH_QINIU_BUCKET", BECAUSE)?,
        domain: required(&o.qiniu_domain, "KITH_QINIU_DOMAIN", BECAUSE)?,
        ttl: Duration::from_secs(o.qiniu_ttl_secs),
    }))
}

/// `off` (or `never`) turns the captcha requirement off; a number is the free calls per hour.
fn parse_captcha_after(raw: &str) -> Result<Option<u32>, ConfigError> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("off") || raw.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    raw.parse::<u32>().map(Some).map_err(|_| {
        ConfigError::invalid(
            "KITH_CAPTCHA_AFTER",
            format!("must be a number of send_code calls per hour, or off; got {raw:?}"),
        )
    })
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

/// Half the CPUs for bcrypt, at least one: with one permit per CPU, a login burst took every
/// core and raised `profile`'s p99 3.7–4.3× on 2 CPUs; with half, 1.4–1.6× (logins/s halve).
/// docs/benchmarks.md, "The login burst".
fn default_hash_concurrency(cpus: usize) -> usize {
    (cpus / 2).max(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn hashing_gets_half_the_cpus_and_at_least_one() {
        assert_eq!(default_hash_concurrency(1), 1);
        assert_eq!(default_hash_concurrency(2), 1);
        assert_eq!(default_hash_concurrency(3), 1);
        assert_eq!(default_hash_concurrency(8), 4);
    }

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
        assert_eq!(s.session_cache, Duration::from_secs(5));
        assert_eq!(s.profile_cache, Duration::from_secs(5));
        assert_eq!(s.bcrypt_cost, 12);
        assert_eq!(
            s.hash_concurrency,
            default_hash_concurrency(std::thread::available_parallelism().map_or(1, usize::from))
        );
        assert_eq!(s.sms_per_ip_hourly, 20);
        assert_eq!(s.sms_global_hourly, 1000);
        assert_eq!(s.db_pool_size, 16);
        assert_eq!(s.db_worker_connections, 4);
        assert_eq!(s.db_transition_batches, None);
        assert_eq!(s.list_cache_rows, 20_000);
        assert_eq!(s.db_timeout, Duration::from_millis(5000));
        assert_eq!(s.db_query_timeout, Duration::from_millis(10_000));
        assert_eq!(s.max_inflight, Some(64));
        assert_eq!(s.shed_wait, Duration::from_millis(100));
        assert_eq!(s.shed_queue, None);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(s.workers, None);
    }

    #[test]
    fn the_session_and_profile_caches_are_bounded() {
        for flag in ["--session-cache-secs", "--profile-cache-secs"] {
            for (arg, ok) in [("0", true), ("60", true), ("61", false)] {
                let got = settings(&[flag, arg]);
                assert_eq!(got.is_ok(), ok, "{flag} {arg}");
            }
        }
    }

    #[test]
    fn the_list_cache_is_bounded() {
        for (arg, ok) in [("0", true), ("1000000", true), ("1000001", false)] {
            let got = settings(&["--list-cache-rows", arg]);
            assert_eq!(got.is_ok(), ok, "{arg}");
        }
    }

    #[test]
    fn worker_connections_are_bounded() {
        for (arg, ok) in [("0", true), ("32", true), ("33", false)] {
            let got = settings(&["--db-worker-connections", arg]);
            assert_eq!(got.is_ok(), ok, "{arg}");
        }
    }

    #[test]
    fn transition_batches_are_bounded() {
        for (arg, ok) in [("0", true), ("16", true), ("17", false)] {
            let got = settings(&["--db-transition-batches", arg]);
            assert_eq!(got.is_ok(), ok, "{arg}");
        }
    }

    #[test]
    fn group_limits() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.group_policy, kith_domain::group::GroupPolicy::default());
        let s = settings(&[
            "--group-name-min",
            "3",
            "--group-name-max",
            "10",
            "--group-bulletin-max",
            "64",
            "--group-max-members",
            "50",
            "--group-max-per-user",
            "7",
        ])
        .unwrap();
        let p = s.group_policy;
        assert_eq!((p.name_min_chars, p.name_max_chars), (3, 10));
        assert_eq!(p.bulletin_max_chars, 64);
        assert_eq!((p.max_members, p.max_groups_per_user), (50, 7));
        for bad in [
            &["--group-name-min", "0"][..],
            &["--group-name-min", "5", "--group-name-max", "4"],
            &["--group-max-members", "1"],
            &["--group-max-per-user", "0"],
            &["--group-bulletin-max", "0"],
        ] {
            assert!(settings(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subcommands_and_global_flags() {
        assert_eq!(parse(&["migrate"]).action(), Command::Migrate);
        assert_eq!(parse(&["serve"]).action(), Command::Serve);
        assert_eq!(parse(&["openapi"]).action(), Command::OpenApi);
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
            "KITH_DB_WORKER_CONNECTIONS",
            "KITH_DB_TRANSITION_BATCHES",
            "KITH_LIST_CACHE_ROWS",
            "KITH_DB_TIMEOUT_MS",
            "KITH_DB_QUERY_TIMEOUT_MS",
            "KITH_MAX_INFLIGHT",
            "KITH_SHED_WAIT_MS",
            "KITH_SHED_QUEUE",
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

    #[test]
    fn token_and_captcha_defaults() {
        let s = settings(&[]).unwrap();
        assert_eq!(
            s.im_token,
            ImTokenChoice::Local {
                secret: None,
                ttl: Duration::from_secs(86_400)
            }
        );
        assert_eq!(s.qiniu, None);
        assert_eq!(s.captcha_after, Some(10));
        assert_eq!(s.captcha_test_outbox, None);
        assert_eq!(s.public_url, None);
    }

    #[test]
    fn captcha_after_takes_a_number_or_off() {
        assert_eq!(
            settings(&["--captcha-after", "0"]).unwrap().captcha_after,
            Some(0)
        );
        assert_eq!(
            settings(&["--captcha-after", "OFF"]).unwrap().captcha_after,
            None
        );
        assert!(settings(&["--captcha-after=-1"])
            .unwrap_err()
            .to_string()
            .starts_with("KITH_CAPTCHA_AFTER"));
        assert_eq!(
            settings(&["--public-url", "https://kith.example/"])
                .unwrap()
                .public_url
                .as_deref(),
            Some("https://kith.example")
        );
        assert!(settings(&["--public-url", "kith.example"]).is_err());
    }

    #[test]
    fn rongcloud_needs_its_settings_and_plain_http() {
        assert_eq!(
            settings(&["--im-token", "rongcloud"])
                .unwrap_err()
                .to_string(),
            "KITH_RONGCLOUD_APP_KEY must be set when KITH_IM_TOKEN=rongcloud"
        );
        let base = [
            "--im-token",
            "rongcloud",
            "--rongcloud-app-key",
            "k",
            "--rongcloud-app-secret",
            "rc-secret-value",
        ];
        let with_url = |url: &str| {
            let mut args = base.to_vec();
            args.extend(["--rongcloud-base-url", url]);
            settings(&args)
        };
        assert!(with_url("https://api.rong-api.com")
            .unwrap_err()
            .to_string()
            .contains("no TLS"));
        let s = with_url("http://127.0.0.1:9/").unwrap();
        let ImTokenChoice::RongCloud(rc) = &s.im_token else {
            panic!("{s:?}");
        };
        assert_eq!(rc.timeout, Duration::from_millis(5000));
        assert!(!format!("{s:?}").contains("rc-secret-value"));
        assert!(settings(&["--im-token-secret", "short"]).is_err());
        let s = settings(&["--im-token-secret", "a-local-im-secret-key"]).unwrap();
        assert!(!format!("{s:?}").contains("a-local-im-secret-key"));
    }

    #[test]
    fn qiniu_needs_all_four_settings() {
        assert_eq!(
            settings(&["--qiniu-bucket", "b"]).unwrap_err().to_string(),
            "KITH_QINIU_ACCESS_KEY must be set when any KITH_QINIU_* setting is given"
        );
        let s = settings(&[
            "--qiniu-access-key",
            "ak",
            "--qiniu-secret-key",
            "qiniu-secret-value",
            "--qiniu-bucket",
            "b",
            "--qiniu-domain",
            "img.example",
            "--qiniu-ttl-secs",
            "60",
        ])
        .unwrap();
        let q = s.qiniu.clone().unwrap();
        assert_eq!((q.bucket.as_str(), q.ttl), ("b", Duration::from_secs(60)));
        assert!(!format!("{s:?}").contains("qiniu-secret-value"));
    }

    #[test]
    fn help_documents_the_token_and_captcha_variables() {
        let help = Cli::command().render_long_help().to_string();
        for var in [
            "KITH_IM_TOKEN",
            "KITH_IM_TOKEN_SECRET",
            "KITH_IM_TOKEN_TTL_SECS",
            "KITH_RONGCLOUD_APP_KEY",
            "KITH_RONGCLOUD_APP_SECRET",
            "KITH_RONGCLOUD_BASE_URL",
            "KITH_RONGCLOUD_TIMEOUT_MS",
            "KITH_QINIU_ACCESS_KEY",
            "KITH_QINIU_SECRET_KEY",
            "KITH_QINIU_BUCKET",
            "KITH_QINIU_DOMAIN",
            "KITH_QINIU_TTL_SECS",
            "KITH_CAPTCHA_AFTER",
            "KITH_CAPTCHA_TEST_OUTBOX",
            "KITH_PUBLIC_URL",
        ] {
            assert!(
                help.contains(&format!("env: {var}")),
                "{var} missing from --help"
            );
        }
    }
}
