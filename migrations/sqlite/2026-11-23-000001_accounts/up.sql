-- Accounts, SMS codes, verification tokens, sessions, settings and the sync change log (SQLite).
-- Keep in step with ../../postgres/2026-11-23-000001_accounts/up.sql and crates/store/src/schema.rs.
-- Instants are milliseconds since the Unix epoch; booleans are stored as 0/1.

CREATE TABLE users (
    id BIGINT PRIMARY KEY NOT NULL,
    phone TEXT NOT NULL UNIQUE,
    region TEXT NOT NULL,
    -- 0 for a placeholder made by a phone-book upload; registration upgrades it in place.
    registered BOOLEAN NOT NULL,
    nickname TEXT NOT NULL,
    portrait_uri TEXT NOT NULL DEFAULT '',
    password_hash TEXT,
    user_name TEXT,
    gender TEXT,
    birth_date TEXT,
    email TEXT,
    -- Defaults are kith_domain::ports::Privacy::default().
    show_user_name BOOLEAN NOT NULL DEFAULT 1,
    show_age BOOLEAN NOT NULL DEFAULT 0,
    show_gender BOOLEAN NOT NULL DEFAULT 1,
    friend_verification BOOLEAN NOT NULL DEFAULT 1,
    findable_by_phone BOOLEAN NOT NULL DEFAULT 1,
    allow_group_invites BOOLEAN NOT NULL DEFAULT 0,
    login_failures INTEGER NOT NULL DEFAULT 0,
    login_window_start BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    lock_level INTEGER NOT NULL DEFAULT 0,
    -- Per-user sync counter: only grows; each change recorded for this user takes the next value.
    version BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One live code per phone: a new code replaces (and so kills) the old one.
CREATE TABLE sms_codes (
    phone TEXT PRIMARY KEY NOT NULL,
    code_hash TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE verification_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    phone TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE INDEX verification_tokens_expires_at ON verification_tokens (expires_at);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);

CREATE INDEX sessions_user_id ON sessions (user_id);

-- Instance-wide values that every instance must agree on (for example the HMAC key).
CREATE TABLE settings (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

-- The incremental-sync log: what changed in `owner`'s view, numbered by the owner's `version`.
CREATE TABLE changes (
    owner BIGINT NOT NULL,
    version BIGINT NOT NULL,
    kind TEXT NOT NULL,
    subject BIGINT,
    at BIGINT NOT NULL,
    PRIMARY KEY (owner, version)
);
