-- Relationships (SQLite): one row per directed pair, everything `owner` holds about `other`
-- (kith_domain::relationship::Side). Both rows of a pair are written in one transaction.
-- Keep in step with ../../postgres/2026-11-23-000002_relationships/up.sql and crates/store/src/schema.rs.
-- Instants are milliseconds since the Unix epoch; booleans are stored as 0/1.

CREATE TABLE relationships (
    owner BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    other BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Friendship::as_str: none, requested, requested_by, friends, ignored, deleted.
    friendship TEXT NOT NULL,
    -- The pending request's id, the same in both rows while the request exists.
    request_id BIGINT,
    request_message TEXT,
    request_at BIGINT,
    ignored_at BIGINT,
    friends_since BIGINT,
    following BOOLEAN NOT NULL,
    followed_at BIGINT,
    starred BOOLEAN NOT NULL,
    blocking BOOLEAN NOT NULL,
    blocked_at BIGINT,
    display_name TEXT,
    description TEXT,
    remark_phone TEXT,
    remark_region TEXT,
    remark_image_uri TEXT,
    -- ConvType::as_str: normal, sticky, archive.
    conv_type TEXT NOT NULL,
    phone_visible BOOLEAN NOT NULL,
    -- NOT Side::is_empty(), kept so the full list can filter on one column.
    active BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (owner, other),
    CHECK (owner <> other)
);

-- Followers lists (rows on me, by their owner) and the cascade when `other` goes.
CREATE INDEX relationships_other_owner ON relationships (other, owner);
-- Friend, incoming and outgoing lists and the pending-request count, in list order.
CREATE INDEX relationships_owner_friendship ON relationships (owner, friendship, other);
-- Answering a request by its id.
CREATE INDEX relationships_owner_request ON relationships (owner, request_id)
    WHERE request_id IS NOT NULL;
