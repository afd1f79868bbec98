//! `kith-bench seed --db URL`: builds a large data set directly in the database (issue 6), with
//! set-based SQL for users and relationship rows and the store's own insert path for contacts.
//!
//! The layout, by user index `i` in `0..users` (user ids are [`user_id`]`(i)`):
//! - `0..HUBS`: the hubs of `friends`, each with exactly [`relationships::FRIENDS_PER_HUB`]
//!   friends and no other row of their own;
//! - `HUBS..HUBS + celebrities`: the celebrities; celebrity `c` has about `followers / (c + 1)`
//!   followers, all among the users without a session;
//! - `0..sessions`: the users written to the users file, each with a live session;
//! - every non-hub has `friends` friends (rounded down to even) on a ring lattice with large,
//!   evenly spread offsets, so users next to each other in the users file are never friends and
//!   `invite-accept` finds its pairs fresh;
//! - `blocks` users without a session block the next user (never a friend nor a follow).
//!
//! Rows are exactly what the store writes for the same states (crates/store/src/relationships.rs):
//! a friendship is two rows `friends` with `friends_since`; a follow is the follower's row alone
//! with `following` and `followed_at`; a block is the blocker's row alone. Nothing is written to
//! the sync change log, and every version stays 0, which the invariant checker accepts.

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::{PgConnection, SqliteConnection};
use kith_domain::addressbook::{Contact, ContactDraft, ContactFields, ContactId};
use kith_domain::ports::AddressBookStore;
use kith_domain::secret::{sha256_hex, Token};
use kith_domain::UserId;
use kith_store::{Store, StoreOptions};

use crate::addressbook;
use crate::relationships::{FRIENDS_PER_HUB, HUBS};
use crate::users::{self, User};
use crate::BoxError;

/// The prime of the id permutation: `(i + 1) * ID_MUL mod ID_PRIME` is a bijection on
/// `0..ID_PRIME - 1`, and every product fits an `i64` (both factors are below 2^31).
const ID_PRIME: i64 = 2_147_483_647;
/// The multiplier of the permutation.
const ID_MUL: i64 = 1_103_515_245;
/// The permuted part is shifted left by this many bits; the low bits add noise.
const ID_LOW_BITS: u32 = 22;
/// The multiplier of the noise in the low bits.
const ID_NOISE: i64 = 1_640_531_527;
/// User indices `[S, N)` follow celebrity `c` starting at `c * FOLLOW_SPREAD`.
const FOLLOW_SPREAD: u64 = 7_919;
/// Rows per multi-row insert (sessions).
const SESSION_BATCH: usize = 500;

/// The options of the bulk mode of `kith-bench seed` (those of `--db`).
#[derive(Debug, Args)]
pub struct BulkArgs {
    /// Friends per user (rounded down to even): a ring lattice over all non-hub users.
    #[arg(long, default_value_t = 20)]
    pub friends: u64,
    /// Followers of the top celebrity; celebrity c gets about this / (c + 1).
    #[arg(long, default_value_t = 100_000)]
    pub followers: u64,
    /// How many celebrities.
    #[arg(long, default_value_t = 10)]
    pub celebrities: u64,
    /// Users who block one other user (among the users without a session); default users / 100.
    #[arg(long)]
    pub blocks: Option<u64>,
    /// Contacts per address book, added through the store (its index rows included).
    #[arg(long, default_value_t = 1_000)]
    pub contacts: u64,
    /// How many users (the first ones of the users file) get an address book.
    #[arg(long, default_value_t = 1)]
    pub books: u64,
    /// Users given a session and written to the users file (the first ones; hubs and
    /// celebrities included).
    #[arg(long, default_value_t = 1_000)]
    pub sessions: u64,
    /// The password of every bulk user (hashed once, at cost 12).
    #[arg(long, default_value = "kith-bench-pw")]
    pub password: String,
}

/// User `i`'s id: random-looking, positive, below 2^53, unique for `i < ID_PRIME - 1`.
pub fn user_id(i: u64) -> i64 {
    let i = i as i64;
    let high = ((i + 1) * ID_MUL) % ID_PRIME;
    let low = (i * ID_NOISE) % (1 << ID_LOW_BITS);
    (high << ID_LOW_BITS) + low
}

/// [`user_id`] as a SQL expression of the integer expression `i` (the same arithmetic, so the
/// database and the users file agree).
fn id_sql(i: &str) -> String {
    format!(
        "(((CAST({i} AS BIGINT) + 1) * {ID_MUL}) % {ID_PRIME}) * {} \
         + ((CAST({i} AS BIGINT) * {ID_NOISE}) % {})",
        1_i64 << ID_LOW_BITS,
        1_i64 << ID_LOW_BITS
    )
}

/// Which database the bulk load writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
}

/// The numbers `0..n` as the CTE `s(t)`, for `WITH RECURSIVE`.
fn series(backend: Backend, n: u64) -> String {
    match backend {
        Backend::Postgres => {
            format!("s(t) AS (SELECT g FROM generate_series(0::bigint, {n} - 1) AS g)")
        }
        Backend::Sqlite => {
            format!(
                "s(t) AS (SELECT 0 WHERE {n} > 0 UNION ALL SELECT t + 1 FROM s WHERE t + 1 < {n})"
            )
        }
    }
}

/// The sizes of a bulk data set and where each part lives, as user indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// All users.
    pub users: u64,
    /// Users with a session (indices `0..sessions`).
    pub sessions: u64,
    /// Celebrities (indices `HUBS..HUBS + celebrities`).
    pub celebrities: u64,
    /// Lattice offsets: non-hub `a` is friends with `a ± offset` (modulo the non-hubs).
    pub offsets: Vec<u64>,
    /// Followers of each celebrity, before skipping the few who are its friends.
    pub followers: Vec<u64>,
    /// Blocking users.
    pub blocks: u64,
}

impl Plan {
    /// Checks the sizes and places everything.
    pub fn new(users: u64, args: &BulkArgs) -> Result<Self, BoxError> {
        let hubs = HUBS as u64;
        let per_hub = FRIENDS_PER_HUB as u64;
        if users < hubs + per_hub + 1 {
            return Err(format!("--users must be at least {}", hubs + per_hub + 1).into());
        }
        let sessions = args.sessions.clamp(hubs, users);
        let celebrities = args.celebrities.min(sessions - hubs);
        let non_hubs = users - hubs;
        // Offsets d * (M / (K/2 * 2 + 1)) stay below M / 2, so no pair appears twice.
        let half = (args.friends / 2).min((non_hubs - 1) / 2);
        let step = non_hubs / (2 * half + 1);
        let offsets = (1..=half).map(|d| d * step).collect();
        let outside = users - sessions;
        let followers = (0..celebrities)
            .map(|c| (args.followers / (c + 1)).min(outside))
            .collect();
        let blocks = args.blocks.unwrap_or(users / 100).min(outside / 2);
        Ok(Self {
            users,
            sessions,
            celebrities,
            offsets,
            followers,
            blocks,
        })
    }

    fn non_hubs(&self) -> u64 {
        self.users - HUBS as u64
    }

    /// Hub `h`'s friends, as user indices: consecutive non-hubs just past the session users.
    pub fn hub_friend(&self, h: u64, k: u64) -> u64 {
        let hubs = HUBS as u64;
        hubs + (self.sessions - hubs + h * FRIENDS_PER_HUB as u64 + k) % self.non_hubs()
    }

    /// SQL: true unless non-hubs `x` and `y` (index expressions) are lattice friends.
    fn not_friends_sql(&self, x: &str, y: &str) -> String {
        let m = self.non_hubs();
        if self.offsets.is_empty() {
            return "1 = 1".to_owned();
        }
        let diffs: Vec<String> = self
            .offsets
            .iter()
            .flat_map(|o| [o.to_string(), (m - o).to_string()])
            .collect();
        format!(
            "((({x}) - ({y})) % {m} + {m}) % {m} NOT IN ({})",
            diffs.join(", ")
        )
    }

    /// Directed relationship rows the plan makes (follows counted before the friend skip).
    pub fn pair_rows(&self) -> u64 {
        self.non_hubs() * 2 * self.offsets.len() as u64
            + 2 * HUBS as u64 * FRIENDS_PER_HUB as u64
            + self.followers.iter().sum::<u64>()
            + self.blocks
    }
}

/// The relationship columns every bulk insert writes, in this order.
const REL_COLUMNS: &str = "owner, other, friendship, friends_since, following, followed_at, \
     starred, blocking, blocked_at, conv_type, phone_visible, active, created_at, updated_at";

/// One backend's connection for the set-based statements.
enum Raw {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

impl Raw {
    fn batch(&mut self, sql: &str) -> Result<(), BoxError> {
        match self {
            Raw::Pg(c) => c.batch_execute(sql)?,
            Raw::Sqlite(c) => c.batch_execute(sql)?,
        }
        Ok(())
    }

    fn execute(&mut self, sql: &str) -> Result<usize, BoxError> {
        Ok(match self {
            Raw::Pg(c) => diesel::sql_query(sql).execute(c)?,
            Raw::Sqlite(c) => diesel::sql_query(sql).execute(c)?,
        })
    }

    fn count(&mut self, table: &str) -> Result<i64, BoxError> {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let sql = format!("SELECT COUNT(*) AS n FROM {table}");
        Ok(match self {
            Raw::Pg(c) => diesel::sql_query(sql).get_result::<N>(c)?.n,
            Raw::Sqlite(c) => diesel::sql_query(sql).get_result::<N>(c)?.n,
        })
    }
}

/// A relationships index or constraint dropped for the load and rebuilt after it.
struct Rebuild {
    drop: String,
    create: String,
}

/// PostgreSQL: the relationships table's indexes and unique constraints, to drop before the
/// load and build once after it (a sort per index instead of 20M random B-tree inserts).
fn pg_relationship_indexes(c: &mut PgConnection) -> Result<Vec<Rebuild>, BoxError> {
    #[derive(QueryableByName)]
    struct Def {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        def: String,
    }
    let constraints: Vec<Def> = diesel::sql_query(
        "SELECT conname::text AS name, pg_get_constraintdef(oid) AS def FROM pg_constraint \
         WHERE conrelid = 'relationships'::regclass AND contype IN ('p', 'u')",
    )
    .load(c)?;
    let indexes: Vec<Def> = diesel::sql_query(
        "SELECT i.indexname::text AS name, i.indexdef AS def FROM pg_indexes i \
         WHERE i.tablename = 'relationships' AND i.schemaname = current_schema() \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conname = i.indexname \
                         AND k.conrelid = 'relationships'::regclass)",
    )
    .load(c)?;
    let mut out: Vec<Rebuild> = constraints
        .into_iter()
        .map(|d| Rebuild {
            drop: format!("ALTER TABLE relationships DROP CONSTRAINT {}", d.name),
            create: format!(
                "ALTER TABLE relationships ADD CONSTRAINT {} {}",
                d.name, d.def
            ),
        })
        .collect();
    out.extend(indexes.into_iter().map(|d| Rebuild {
        drop: format!("DROP INDEX {}", d.name),
        create: d.def,
    }));
    Ok(out)
}

/// SQLite: the relationships table's secondary indexes (its primary key cannot be dropped).
fn sqlite_relationship_indexes(c: &mut SqliteConnection) -> Result<Vec<Rebuild>, BoxError> {
    #[derive(QueryableByName)]
    struct Def {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        def: String,
    }
    let defs: Vec<Def> = diesel::sql_query(
        "SELECT name, sql AS def FROM sqlite_master WHERE type = 'index' \
         AND tbl_name = 'relationships' AND sql IS NOT NULL",
    )
    .load(c)?;
    Ok(defs
        .into_iter()
        .map(|d| Rebuild {
            drop: format!("DROP INDEX {}", d.name),
            create: d.def,
        })
        .collect())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Times one phase and prints it.
struct Phases {
    started: Instant,
    phase: Instant,
}

impl Phases {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            phase: now,
        }
    }

    fn done(&mut self, what: &str) {
        let now = Instant::now();
        println!(
            "  {what}: {:.1} s (total {:.1} s)",
            (now - self.phase).as_secs_f64(),
            (now - self.started).as_secs_f64()
        );
        self.phase = now;
    }
}

/// The session token of user `i`: 64 hex digits derived from a per-run secret.
fn session_token(secret: &str, i: u64) -> String {
    sha256_hex(&format!("kith-bench:{secret}:{i}"))
}

/// The SQL of the relationship phases, in order, each with a label.
fn relationship_statements(plan: &Plan, backend: Backend, now: i64) -> Vec<(String, String)> {
    let hubs = HUBS as u64;
    let m = plan.non_hubs();
    let mut out = Vec::new();
    let friend_row = |a: &str, b: &str| {
        format!(
            "SELECT {a}, {b}, 'friends', {now}, FALSE, CAST(NULL AS BIGINT), FALSE, FALSE, CAST(NULL AS BIGINT), 'normal', \
             FALSE, TRUE, {now}, {now} FROM p"
        )
    };
    let pairs_insert = |pairs: String| {
        format!(
            "INSERT INTO relationships ({REL_COLUMNS}) WITH RECURSIVE {pairs} {} UNION ALL {}",
            friend_row("x", "y"),
            friend_row("y", "x")
        )
    };
    for (d, off) in plan.offsets.iter().enumerate() {
        let pairs = format!(
            "{}, p(x, y) AS (SELECT {}, {} FROM s)",
            series(backend, m),
            id_sql(&format!("{hubs} + t")),
            id_sql(&format!("{hubs} + (t + {off}) % {m}")),
        );
        out.push((
            format!("friends, offset {} of {}", d + 1, plan.offsets.len()),
            pairs_insert(pairs),
        ));
    }
    // The hubs' friends: hub h with FRIENDS_PER_HUB consecutive non-hubs past the sessions.
    let per_hub = FRIENDS_PER_HUB as u64;
    let first = plan.hub_friend(0, 0);
    let pairs = format!(
        "{}, p(x, y) AS (SELECT {}, {} FROM s)",
        series(backend, hubs * per_hub),
        id_sql(&format!("t / {per_hub}")),
        id_sql(&format!("{hubs} + ({first} - {hubs} + t) % {m}")),
    );
    out.push(("hub friends".to_owned(), pairs_insert(pairs)));
    let outside = plan.users - plan.sessions;
    for (c, &count) in plan.followers.iter().enumerate() {
        let celeb = hubs + c as u64;
        let follower = format!(
            "{} + ({} * {FOLLOW_SPREAD} + t) % {outside}",
            plan.sessions, c as u64
        );
        let sql = format!(
            "INSERT INTO relationships ({REL_COLUMNS}) WITH RECURSIVE {} \
             SELECT {}, {}, 'none', CAST(NULL AS BIGINT), TRUE, {now}, FALSE, FALSE, CAST(NULL AS BIGINT), 'normal', FALSE, \
             TRUE, {now}, {now} FROM s WHERE {}",
            series(backend, count),
            id_sql(&follower),
            id_sql(&celeb.to_string()),
            plan.not_friends_sql(&format!("{follower} - {hubs}"), &(c as u64).to_string()),
        );
        out.push((format!("followers of celebrity {c} ({count})"), sql));
    }
    if plan.blocks > 0 {
        let (x, y) = (
            format!("{} + 2 * t", plan.sessions),
            format!("{} + 2 * t + 1", plan.sessions),
        );
        let sql = format!(
            "INSERT INTO relationships ({REL_COLUMNS}) WITH RECURSIVE {} \
             SELECT {}, {}, 'none', CAST(NULL AS BIGINT), FALSE, CAST(NULL AS BIGINT), FALSE, TRUE, {now}, 'normal', FALSE, \
             TRUE, {now}, {now} FROM s WHERE {}",
            series(backend, plan.blocks),
            id_sql(&x),
            id_sql(&y),
            plan.not_friends_sql(&format!("{x} - {hubs}"), &format!("{y} - {hubs}")),
        );
        out.push((format!("blocks ({})", plan.blocks), sql));
    }
    out
}

/// The contact draft `i` of a bulk address book: the same contacts as `prepare-book`, so that
/// `addressbook-search` finds its keywords.
fn contact_draft(i: usize) -> ContactDraft {
    let (name, numbers, email) = addressbook::contact_parts(i);
    ContactDraft {
        name,
        numbers,
        emails: vec![("Work".to_owned(), email)],
        tag_ids: Vec::new(),
        note: None,
    }
}

/// Fills `owner`'s book with `count` contacts through the store's insert path.
async fn fill_book(store: Store, owner: i64, book: u64, count: u64) -> Result<(), BoxError> {
    let owner = UserId::new(owner).map_err(|e| format!("user id {owner}: {e}"))?;
    let now = now_ms();
    for i in 0..count {
        let fields = ContactFields::new(contact_draft(i as usize))
            .map_err(|e| format!("contact {i}: {e}"))?;
        let bits = sha256_hex(&format!("contact:{book}:{i}"));
        let bits = u64::from_str_radix(&bits[..16], 16)?;
        let contact = Contact::create(ContactId::from_random(bits), fields, now);
        store
            .insert_contact(owner, contact)
            .await
            .map_err(|e| format!("book {book} contact {i}: {e}"))?;
    }
    Ok(())
}

/// The bulk seed: everything in the module comment, timed per phase.
pub async fn seed(
    db: &str,
    users_n: u64,
    args: &BulkArgs,
    first_phone: u64,
    out: &Path,
) -> Result<(), BoxError> {
    let backend = if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        Backend::Postgres
    } else if db.starts_with("sqlite:") {
        Backend::Sqlite
    } else {
        return Err("--db must be postgres://… or sqlite://PATH".into());
    };
    let plan = Plan::new(users_n, args)?;
    println!(
        "bulk seed: {} users, {} friends each, {} celebrities (top {} followers), {} blocks, \
         {} sessions, {} books of {} contacts: about {} relationship rows",
        plan.users,
        plan.offsets.len() * 2,
        plan.celebrities,
        plan.followers.first().copied().unwrap_or(0),
        plan.blocks,
        plan.sessions,
        args.books.min(plan.sessions),
        args.contacts,
        plan.pair_rows()
    );
    let mut phases = Phases::new();
    let store_url = match backend {
        // Commits of the contact inserts need not wait for the WAL flush here.
        Backend::Postgres if !db.contains("options=") => {
            let sep = if db.contains('?') { '&' } else { '?' };
            format!("{db}{sep}options=-c%20synchronous_commit%3Doff")
        }
        _ => db.to_owned(),
    };
    let opts = StoreOptions {
        pool_size: 4,
        ..StoreOptions::default()
    };
    let store = {
        let url = store_url.clone();
        tokio::task::spawn_blocking(move || -> Result<Store, BoxError> {
            let store = Store::open(&url, opts)?;
            store.migrate()?;
            Ok(store)
        })
        .await??
    };
    phases.done("open and migrate");

    let password = args.password.clone();
    let hash = tokio::task::spawn_blocking(move || bcrypt::hash(password, 12)).await??;
    phases.done("password hash (bcrypt cost 12, once)");

    let secret = sha256_hex(&format!(
        "{}:{}:{:?}",
        std::process::id(),
        now_ms(),
        Instant::now()
    ));
    let db = db.to_owned();
    let plan2 = plan.clone();
    let phases = tokio::task::spawn_blocking(move || {
        load(&db, backend, &plan2, &hash, first_phone, &secret, phases)
            .map(|phases| (phases, secret))
    })
    .await??;
    let (mut phases, secret) = phases;

    let books = args.books.min(plan.sessions);
    if args.contacts > 0 && books > 0 {
        let mut tasks = Vec::new();
        for b in 0..books {
            tasks.push(tokio::spawn(fill_book(
                store.clone(),
                user_id(b),
                b,
                args.contacts,
            )));
        }
        for t in tasks {
            t.await??;
        }
        phases.done(&format!(
            "address books ({books} × {} contacts, store insert path)",
            args.contacts
        ));
    }

    let list: Vec<User> = (0..plan.sessions)
        .map(|i| User {
            id: user_id(i).to_string(),
            token: session_token(&secret, i),
            phone: (first_phone + i).to_string(),
            password: args.password.clone(),
        })
        .collect();
    users::save(out, &list)?;
    phases.done(&format!(
        "users file ({} sessions) {}",
        list.len(),
        out.display()
    ));
    Ok(())
}

/// The set-based part, on one connection: users, relationships, sessions, indexes, statistics.
fn load(
    db: &str,
    backend: Backend,
    plan: &Plan,
    password_hash: &str,
    first_phone: u64,
    secret: &str,
    mut phases: Phases,
) -> Result<Phases, BoxError> {
    let mut raw = match backend {
        Backend::Postgres => Raw::Pg(PgConnection::establish(db)?),
        Backend::Sqlite => {
            let path = db.strip_prefix("sqlite:").unwrap_or(db);
            let path = path.strip_prefix("//").unwrap_or(path);
            Raw::Sqlite(SqliteConnection::establish(path)?)
        }
    };
    if raw.count("users")? != 0 {
        return Err("the bulk seed needs a database without users".into());
    }
    let rebuild = match &mut raw {
        Raw::Pg(c) => {
            // Foreign-key triggers off (every id the load writes exists by construction), no
            // WAL flush per commit, and room for the index sorts.
            c.batch_execute(
                "SET session_replication_role = replica; SET synchronous_commit = off; \
                 SET maintenance_work_mem = '512MB'; SET work_mem = '64MB'",
            )?;
            let rebuild = pg_relationship_indexes(c)?;
            for r in &rebuild {
                c.batch_execute(&r.drop)?;
            }
            rebuild
        }
        Raw::Sqlite(c) => {
            c.batch_execute(
                "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = OFF; \
                 PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;",
            )?;
            let rebuild = sqlite_relationship_indexes(c)?;
            for r in &rebuild {
                c.batch_execute(&r.drop)?;
            }
            rebuild
        }
    };
    phases.done(&format!(
        "prepare ({} relationship indexes dropped)",
        rebuild.len()
    ));

    let now = now_ms();
    let hash = password_hash.replace('\'', "''");
    let users_sql = format!(
        "INSERT INTO users (id, phone, region, registered, nickname, portrait_uri, \
         password_hash, gender, created_at, updated_at) WITH RECURSIVE {} \
         SELECT {}, '+86' || ({first_phone} + t), '86', TRUE, 'bench ' || t, \
         'https://example.com/p/' || t || '.png', '{hash}', \
         CASE WHEN t % 2 = 0 THEN 'male' ELSE 'female' END, {now}, {now} FROM s",
        series(backend, plan.users),
        id_sql("t"),
    );
    let n = in_tx(&mut raw, &users_sql)?;
    phases.done(&format!("users ({n})"));

    let mut rows = 0;
    for (label, sql) in relationship_statements(plan, backend, now) {
        let n = in_tx(&mut raw, &sql)?;
        rows += n;
        phases.done(&format!("{label}: {n} rows"));
    }

    let mut values = Vec::with_capacity(SESSION_BATCH);
    let mut sessions = 0;
    for i in 0..plan.sessions {
        let token =
            Token::parse(&session_token(secret, i)).ok_or("a session token is malformed")?;
        values.push(format!(
            "('{}', {}, {now}, {now})",
            token.hash(),
            user_id(i)
        ));
        if values.len() == SESSION_BATCH || i + 1 == plan.sessions {
            sessions += in_tx(
                &mut raw,
                &format!(
                    "INSERT INTO sessions (token_hash, user_id, created_at, last_seen_at) VALUES {}",
                    values.join(", ")
                ),
            )?;
            values.clear();
        }
    }
    phases.done(&format!("sessions ({sessions})"));

    for r in &rebuild {
        raw.batch(&r.create)?;
    }
    if !rebuild.is_empty() {
        phases.done(&format!("relationship indexes rebuilt ({})", rebuild.len()));
    }
    if let Raw::Pg(c) = &mut raw {
        c.batch_execute("SET session_replication_role = origin")?;
    }
    // This machine's PostgreSQL runs without autovacuum: without statistics the planner guesses.
    raw.batch("ANALYZE")?;
    phases.done("ANALYZE");
    let (u, r) = (raw.count("users")?, raw.count("relationships")?);
    println!("  loaded {u} users and {r} relationship rows ({rows} inserted)");
    Ok(phases)
}

/// Runs one statement in its own transaction; returns the rows it wrote.
fn in_tx(raw: &mut Raw, sql: &str) -> Result<usize, BoxError> {
    raw.batch("BEGIN")?;
    match raw.execute(sql) {
        Ok(n) => {
            raw.batch("COMMIT")?;
            Ok(n)
        }
        Err(e) => {
            let _ = raw.batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Shared by the smoke test: opens the users file's database and counts what the load wrote.
#[cfg(test)]
fn counts(path: &std::path::Path) -> Result<(i64, i64, i64, i64), BoxError> {
    let mut raw = Raw::Sqlite(SqliteConnection::establish(
        path.to_str().ok_or("not UTF-8")?,
    )?);
    Ok((
        raw.count("users")?,
        raw.count("relationships")?,
        raw.count("sessions")?,
        raw.count("contacts")?,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::HashSet;

    use super::*;

    fn args() -> BulkArgs {
        BulkArgs {
            friends: 20,
            followers: 300,
            celebrities: 3,
            blocks: None,
            contacts: 5,
            books: 2,
            sessions: 20,
            password: "kith-bench-pw".into(),
        }
    }

    #[test]
    fn ids_are_unique_positive_and_below_2_pow_53() {
        let mut seen = HashSet::new();
        for i in 0..300_000 {
            let id = user_id(i);
            assert!(id > 0 && id < 1 << 53, "{i}: {id}");
            assert!(seen.insert(id), "{i}: {id} twice");
        }
        // Far indices stay in range too.
        for i in [1_000_000, 2_000_000, 100_000_000, (ID_PRIME - 2) as u64] {
            let id = user_id(i);
            assert!(id > 0 && id < 1 << 53, "{i}: {id}");
        }
        // Neighbours do not look like neighbours.
        assert!((user_id(1) - user_id(0)).abs() > 1 << 30);
    }

    #[test]
    fn the_lattice_never_repeats_a_pair_and_hubs_stay_apart() {
        let plan = Plan::new(1_000, &args()).unwrap();
        assert_eq!(plan.offsets.len(), 10);
        let m = plan.non_hubs();
        let mut pairs = HashSet::new();
        for t in 0..m {
            for off in &plan.offsets {
                let (a, b) = (t, (t + off) % m);
                assert_ne!(a, b);
                assert!(pairs.insert((a.min(b), a.max(b))), "pair {a} {b} twice");
            }
        }
        // Users next to each other in the users file are never lattice friends.
        assert!(plan.offsets.iter().all(|&o| o > 20 && o < m - 20));
        let friends: HashSet<u64> = (0..FRIENDS_PER_HUB as u64)
            .map(|k| plan.hub_friend(1, k))
            .collect();
        assert_eq!(friends.len(), FRIENDS_PER_HUB);
        assert!(friends.iter().all(|&f| f >= HUBS as u64 && f < 1_000));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tiny_sqlite_load_has_the_planned_rows_and_a_users_file() {
        let dir = std::env::temp_dir().join(format!("kith-bench-bulk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("kith.db");
        let out = dir.join("users.jsonl");
        let args = args();
        seed(
            &format!("sqlite://{}", db.display()),
            200,
            &args,
            13_900_000_000,
            &out,
        )
        .await
        .unwrap();
        let plan = Plan::new(200, &args).unwrap();
        let (users, rels, sessions, contacts) = counts(&db).unwrap();
        assert_eq!(users, 200);
        assert_eq!(sessions, 20);
        assert_eq!(contacts, 10);
        // Followers who are also the celebrity's lattice friends are skipped.
        let skipped = plan.pair_rows() as i64 - rels;
        assert!(
            (0..=60).contains(&skipped),
            "{rels} of {}",
            plan.pair_rows()
        );
        let list = users::load(&out).unwrap();
        assert_eq!(list.len(), 20);
        assert_eq!(list[3].id, user_id(3).to_string());
        assert_eq!(list[3].phone, "13900000003");
        // The token in the file is the one whose hash the session row holds.
        let mut c = SqliteConnection::establish(db.to_str().unwrap()).unwrap();
        #[derive(QueryableByName)]
        struct Owner {
            #[diesel(sql_type = BigInt)]
            user_id: i64,
        }
        let hash = Token::parse(&list[3].token).unwrap().hash();
        let owner: Owner = diesel::sql_query(format!(
            "SELECT user_id FROM sessions WHERE token_hash = '{hash}'"
        ))
        .get_result(&mut c)
        .unwrap();
        assert_eq!(owner.user_id, user_id(3));
        // Each hub has exactly its friends, all accepted, and nothing else of its own.
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let n: N = diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM relationships WHERE owner = {} AND friendship = 'friends'",
            user_id(0)
        ))
        .get_result(&mut c)
        .unwrap();
        assert_eq!(n.n, FRIENDS_PER_HUB as i64);
        // The store's own invariant checker finds nothing wrong.
        let store = Store::open(
            &format!("sqlite://{}", db.display()),
            StoreOptions::default(),
        )
        .unwrap();
        let report = kith_store::invariants::check(&store).await.unwrap();
        assert!(report.is_clean(), "{report}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
