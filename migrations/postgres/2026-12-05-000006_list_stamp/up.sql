-- A second counter beside users.version, for the store's friend-list cache (PostgreSQL).
-- Keep in step with ../../sqlite/2026-12-05-000006_list_stamp/up.sql.
--
-- Why: a cached friend-list page is served again only while its owner's (version, list_stamp)
-- is unchanged. `version` moves with the owner's own rows (and their sync log); `list_stamp`
-- moves when something the owner's list shows changes without a change of theirs: the other's
-- row on them, or a listed user's profile. Kept apart from `version`, so those changes add no
-- entry to the owner's sync log. Never shown to anyone. See docs/architecture.md.
ALTER TABLE users ADD COLUMN list_stamp BIGINT NOT NULL DEFAULT 0;
