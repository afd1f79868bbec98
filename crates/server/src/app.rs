//! Wiring: builds every adapter from the settings, hands them to the domain, and runs the server.

use std::sync::Arc;

use actix_web::{App, HttpServer};
use actix_web_prom::PrometheusMetricsBuilder;
use kith_domain::account::{AccountPolicy, AccountPorts, AccountService};
use kith_domain::addressbook::{AddressBookPorts, AddressBookService};
use kith_domain::captcha::{CaptchaPolicy, CaptchaPorts, CaptchaService};
use kith_domain::group::{GroupPorts, GroupService};
use kith_domain::ports::Random;
use kith_domain::ports::{CaptchaRenderer, ImTokenIssuer, UploadTokenIssuer};
use kith_domain::relationship::Policy;
use kith_domain::secret::ServerKey;
use kith_domain::social::{RelationshipPolicy, RelationshipPorts, RelationshipService};
use kith_domain::sync::{SyncPolicy, SyncPorts, SyncService};
use kith_domain::tokens::{TokenPorts, TokenService};
use kith_http::rendered::RenderedPages;
use kith_http::{AppState, CookieSettings};
use kith_store::{Store, StoreOptions};
use prometheus::IntGauge;
use thiserror::Error;

use crate::captcha::{AnswerOutbox, BitmapCaptchaRenderer};
use crate::config::{Command, ImTokenChoice, Settings};
use crate::hasher::BcryptHasher;
use crate::system::{OsRandom, SystemClock};
use crate::tokens::{LocalImIssuer, QiniuIssuer, RongCloudIssuer};

/// Why Kith could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum AppError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] kith_store::StoreError),
    /// The password hasher could not be built.
    #[error("password hasher: {0}")]
    Hasher(#[from] crate::hasher::HasherError),
    /// Anything else at start-up (bind, metrics).
    #[error("{0}")]
    Startup(String),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
    /// `kith check` could not run, or found broken invariants.
    #[error("check: {0}")]
    Check(String),
}

/// Runs the subcommand the settings name.
pub fn run(settings: Settings) -> Result<(), AppError> {
    match settings.command {
        Command::Migrate => {
            let store = open_store(&settings)?;
            tracing::info!(backend = store.backend(), "migrations applied");
            Ok(())
        }
        Command::Serve => actix_web::rt::System::new().block_on(serve(settings)),
        Command::Check => check(&settings),
        Command::OpenApi => print_openapi(),
    }
}

/// `kith openapi`: the bytes `GET /openapi.json` serves, on stdout.
fn print_openapi() -> Result<(), AppError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(kith_http::openapi::json().as_bytes())?;
    out.flush()?;
    Ok(())
}

/// `kith check`: runs the store's invariant checker and prints its report on stdout.
fn check(settings: &Settings) -> Result<(), AppError> {
    // One check reads every table: the per-request bound would cut it short on a large database.
    let store = open_store(settings)?.with_query_timeout(std::time::Duration::from_secs(86_400));
    let report = actix_web::rt::System::new()
        .block_on(kith_store::invariants::check(&store))
        .map_err(|e| AppError::Check(e.to_string()))?;
    println!("{report}");
    if report.is_clean() {
        Ok(())
    } else {
        Err(AppError::Check(format!(
            "{} invariant violation(s)",
            report.total()
        )))
    }
}

/// Opens the pool and applies pending migrations (under an advisory lock on PostgreSQL).
pub fn open_store(settings: &Settings) -> Result<Store, AppError> {
    let store = Store::open(
        &settings.database_url,
        StoreOptions {
            pool_size: settings.db_pool_size,
            connect_timeout: settings.db_timeout,
            worker_connections: settings.db_worker_connections,
            transition_batches: settings.db_transition_batches,
            list_cache_rows: settings.list_cache_rows,
            sqlite_wal_reset_bytes: kith_store::DEFAULT_SQLITE_WAL_RESET_BYTES,
        },
    )?;
    store.migrate()?;
    Ok(store.with_query_timeout(settings.db_query_timeout))
}

/// The key for SMS code hashes: made once, kept in the database so every instance shares it.
fn server_key(store: &Store, random: &dyn Random) -> Result<ServerKey, AppError> {
    let mut fresh = [0u8; 32];
    random.fill(&mut fresh);
    let stored = store.get_or_init_setting("sms_code_key", hex::encode(fresh))?;
    let bytes =
        hex::decode(stored).map_err(|_| AppError::Startup("corrupt sms_code_key".into()))?;
    ServerKey::new(bytes).map_err(|e| AppError::Startup(e.to_string()))
}

/// The IM token issuer the settings name. A local issuer without a configured key uses one
/// made once and kept in the database, so every instance signs alike.
fn im_token_issuer(
    settings: &Settings,
    store: &Store,
    random: &Arc<dyn Random>,
) -> Result<Arc<dyn ImTokenIssuer>, AppError> {
    match &settings.im_token {
        ImTokenChoice::Local { secret, ttl } => {
            let key = match secret {
                Some(secret) => secret.as_bytes().to_vec(),
                None => {
                    let mut fresh = [0u8; 32];
                    random.fill(&mut fresh);
                    let stored = store.get_or_init_setting("im_token_key", hex::encode(fresh))?;
                    hex::decode(stored)
                        .map_err(|_| AppError::Startup("corrupt im_token_key".into()))?
                }
            };
            let issuer =
                LocalImIssuer::new(key, *ttl).map_err(|e| AppError::Startup(e.to_string()))?;
            Ok(Arc::new(issuer))
        }
        ImTokenChoice::RongCloud(config) => Ok(Arc::new(RongCloudIssuer::new(
            config.clone(),
            random.clone(),
        ))),
    }
}

/// The captcha renderer, recording answers to the test outbox when one is configured.
fn captcha_renderer(settings: &Settings) -> Arc<dyn CaptchaRenderer> {
    match &settings.captcha_test_outbox {
        Some(path) => {
            tracing::warn!(
                path = %path.display(),
                "KITH_CAPTCHA_TEST_OUTBOX is set: captcha answers are written to a file \
                 (development only, never in production)"
            );
            Arc::new(AnswerOutbox::new(BitmapCaptchaRenderer, path.clone()))
        }
        None => Arc::new(BitmapCaptchaRenderer),
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Builds the domain services over the adapters.
pub fn build_state(settings: &Settings, store: Store) -> Result<AppState, AppError> {
    let random: Arc<dyn Random> = Arc::new(OsRandom);
    let key = server_key(&store, random.as_ref())?;
    let hasher = BcryptHasher::new(settings.bcrypt_cost, settings.hash_concurrency)?;
    let store = Arc::new(store);
    let clock = Arc::new(SystemClock);
    let relationships = RelationshipService::new(
        RelationshipPorts {
            store: store.clone(),
            accounts: store.clone(),
            clock: clock.clone(),
            random: random.clone(),
        },
        RelationshipPolicy {
            cooldowns: Policy {
                pending_cooldown_ms: millis(settings.invite_pending_cooldown),
                ignored_cooldown_ms: millis(settings.invite_ignored_cooldown),
            },
            list_cap: settings.list_cap,
            phones_per_day: settings.phones_per_day,
            ..RelationshipPolicy::default()
        },
    );
    let addressbook = AddressBookService::new(AddressBookPorts {
        store: store.clone(),
        clock: clock.clone(),
        random: random.clone(),
    });
    let sync = SyncService::new(
        SyncPorts {
            store: store.clone(),
            clock: clock.clone(),
        },
        SyncPolicy {
            horizon_ms: millis(settings.sync_horizon),
        },
    );
    let captcha = CaptchaService::new(
        CaptchaPorts {
            store: store.clone(),
            renderer: captcha_renderer(settings),
            clock: clock.clone(),
            random: random.clone(),
        },
        // Answer hashes are bound to the purpose "captcha", apart from SMS code hashes.
        key.clone(),
        CaptchaPolicy {
            required_after: settings.captcha_after,
            ..CaptchaPolicy::default()
        },
    );
    let upload: Option<Arc<dyn UploadTokenIssuer>> = settings
        .qiniu
        .clone()
        .map(|q| Arc::new(QiniuIssuer::new(q)) as Arc<dyn UploadTokenIssuer>);
    let tokens = TokenService::new(TokenPorts {
        accounts: store.clone(),
        im: im_token_issuer(settings, &store, &random)?,
        upload,
        clock: clock.clone(),
    });
    let groups = GroupService::new(
        GroupPorts {
            store: store.clone(),
            relationships: store.clone(),
            accounts: store.clone(),
            clock: clock.clone(),
            random: random.clone(),
        },
        settings.group_policy,
    );
    let ports = AccountPorts {
        store,
        sms: crate::sms::build(&settings.sms),
        hasher: Arc::new(hasher),
        clock,
        random,
    };
    let policy = AccountPolicy {
        sms_per_ip_hourly: settings.sms_per_ip_hourly,
        sms_global_hourly: settings.sms_global_hourly,
        session_idle_ms: millis(settings.session_idle),
        session_max_ms: millis(settings.session_max),
        session_cache_ms: millis(settings.session_cache),
        profile_cache_ms: millis(settings.profile_cache),
        ..AccountPolicy::default()
    };
    Ok(AppState {
        accounts: Arc::new(AccountService::new(ports, key, policy).with_captcha(Arc::new(captcha))),
        relationships: Arc::new(relationships),
        addressbook: Arc::new(addressbook),
        groups: Arc::new(groups),
        sync: Arc::new(sync),
        cookie: CookieSettings {
            name: settings.cookie_name.clone(),
            secure: settings.cookie_secure,
            domain: settings.cookie_domain.clone(),
            max_age_secs: i64::try_from(settings.session_max.as_secs()).unwrap_or(i64::MAX),
        },
        tokens: Arc::new(tokens),
        // Beside the store's list cache and as large: its answers are of those pages.
        rendered: Arc::new(RenderedPages::for_rows(settings.list_cache_rows)),
        public_url: settings.public_url.clone(),
    })
}

fn gauge(registry: &prometheus::Registry, name: &str, help: &str) -> Result<IntGauge, AppError> {
    let g = IntGauge::new(name, help).map_err(|e| AppError::Startup(e.to_string()))?;
    registry
        .register(Box::new(g.clone()))
        .map_err(|e| AppError::Startup(e.to_string()))?;
    Ok(g)
}

/// Compacts the sync change log now and then every `every`. Several instances may all do it:
/// compaction is idempotent.
fn spawn_compaction(sync: Arc<SyncService>, every: std::time::Duration) {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match sync.compact().await {
                Ok(done) if done.entries > 0 => tracing::info!(
                    owners = done.owners,
                    entries = done.entries,
                    "sync change log compacted"
                ),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "sync compaction failed"),
            }
        }
    });
}

/// Serves HTTP until SIGTERM or SIGINT; requests in flight finish within the grace period.
pub async fn serve(settings: Settings) -> Result<(), AppError> {
    let store = actix_web::rt::task::spawn_blocking({
        let settings = settings.clone();
        move || open_store(&settings)
    })
    .await
    .map_err(|e| AppError::Startup(e.to_string()))??;
    let state = build_state(&settings, store.clone())?;

    let registry = prometheus::Registry::new();
    let connections = gauge(
        &registry,
        "kith_db_pool_connections",
        "Open database connections",
    )?;
    let idle = gauge(&registry, "kith_db_pool_idle", "Idle database connections")?;
    let metrics = PrometheusMetricsBuilder::new("kith")
        .registry(registry)
        .endpoint("/metrics")
        .mask_unmatched_patterns("UNMATCHED")
        .build()
        .map_err(|e| AppError::Startup(e.to_string()))?;
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let (open, free) = store.pool_state();
            connections.set(i64::from(open));
            idle.set(i64::from(free));
        }
    });

    spawn_compaction(state.sync.clone(), settings.sync_compact_every);

    tracing::info!(
        bind = %settings.bind,
        database = %settings.database_url_for_logs(),
        "kith serving"
    );
    let shed = kith_http::shed::Shed::new(
        settings.max_inflight.unwrap_or(usize::MAX >> 4),
        settings.shed_queue,
        settings.shed_wait,
    );
    let shedding = settings.max_inflight.is_some();
    let mut server = HttpServer::new(move || {
        App::new()
            // Innermost, so the logs and metrics count the requests it sheds.
            .wrap(actix_web::middleware::Condition::new(
                shedding,
                shed.clone(),
            ))
            .wrap(metrics.clone())
            .wrap_fn(crate::telemetry::log_slow)
            .wrap(tracing_actix_web::TracingLogger::<
                crate::telemetry::RequestSpan,
            >::new())
            .configure(kith_http::configure(state.clone()))
    })
    .shutdown_timeout(settings.shutdown_timeout.as_secs());
    if let Some(workers) = settings.workers {
        server = server.workers(workers);
    }
    server.bind(settings.bind)?.run().await?;
    tracing::info!("kith stopped");
    Ok(())
}
