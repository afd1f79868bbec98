-- Groups, their members, sync compaction floors and image captchas (postgres).
-- Keep in step with ../../sqlite/2026-11-23-000004_groups_sync/up.sql and crates/store/src/schema.rs.
-- Instants are milliseconds since the Unix epoch.

-- A SealTalk group. Ids are random positive integers below 2^53, like user ids.
CREATE TABLE chat_groups (
    id BIGINT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    portrait_uri TEXT NOT NULL DEFAULT '',
    creator_id BIGINT NOT NULL REFERENCES users (id),
    bulletin TEXT NOT NULL DEFAULT '',
    bulletin_at BIGINT NOT NULL DEFAULT 0,
    member_count INTEGER NOT NULL DEFAULT 0,
    -- A dismissed group keeps its row so that syncs can still name it in tombstones.
    dismissed BOOLEAN NOT NULL DEFAULT FALSE,
    -- The group information's timestamp (SealTalk's group.timestamp): bumped on every change.
    stamp BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Current members only: leaving deletes the row (the change log carries the tombstone).
-- role: 0 creator, 1 member, 2 manager.
CREATE TABLE group_members (
    group_id BIGINT NOT NULL REFERENCES chat_groups (id),
    member_id BIGINT NOT NULL REFERENCES users (id),
    role INTEGER NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    joined_at BIGINT NOT NULL,
    stamp BIGINT NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_member ON group_members (member_id, group_id);

-- A second id for changes that name a pair, such as (group, member).
ALTER TABLE changes ADD COLUMN detail BIGINT;
-- Compaction deletes change rows by age.
CREATE INDEX changes_at ON changes (at);

-- Change rows at or below `floor` were compacted away: a sync from an older version must restart from 0.
CREATE TABLE sync_floors (
    owner BIGINT PRIMARY KEY NOT NULL,
    floor BIGINT NOT NULL
);

-- Image captchas: only a keyed hash of the answer is kept; single use, short-lived.
CREATE TABLE captchas (
    id TEXT PRIMARY KEY NOT NULL,
    answer_hash TEXT NOT NULL,
    png BYTEA NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX captchas_expires_at ON captchas (expires_at);
