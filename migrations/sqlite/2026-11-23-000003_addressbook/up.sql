-- Address book v2 (SQLite): each user's contacts and tags (document 002, issue 4).
-- Keep in step with ../../postgres/2026-11-23-000003_addressbook/up.sql and crates/store/src/schema.rs.
-- Instants are milliseconds since the Unix epoch. Ids are random positive numbers, shown to
-- clients as 16 hex digits.

CREATE TABLE contacts (
    owner BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    -- CouchDB-style "N-<hash of the content>".
    rev TEXT NOT NULL,
    name TEXT NOT NULL,
    -- lower(name), computed by the domain (Unicode-aware, unlike SQLite's lower()): the sort
    -- key and what name searches match. Byte order, so both backends sort alike.
    name_lower TEXT NOT NULL,
    -- JSON [[type, number], ...] in the client's order.
    numbers TEXT NOT NULL,
    -- JSON [[type, email], ...] in the client's order.
    emails TEXT NOT NULL,
    -- The lower-cased addresses, one per line: what email searches match.
    emails_lower TEXT NOT NULL,
    -- The tag ids (16 hex digits) separated by spaces, in the client's order.
    tag_ids TEXT NOT NULL,
    note TEXT,
    created_at BIGINT NOT NULL,
    modified_at BIGINT,
    PRIMARY KEY (owner, id)
);

-- Listing and paging in (name, id) order, and the keyset of cursor paging.
CREATE INDEX contacts_owner_name ON contacts (owner, name_lower, id);

-- Every suffix of every number's digits, so that a digit search is an index range: the
-- prefix "154732" of the suffix "15473244..." finds "+86 154-7324-43242".
CREATE TABLE contact_digits (
    owner BIGINT NOT NULL,
    digits TEXT NOT NULL,
    contact_id BIGINT NOT NULL,
    PRIMARY KEY (owner, digits, contact_id),
    FOREIGN KEY (owner, contact_id) REFERENCES contacts (owner, id) ON DELETE CASCADE
);
CREATE INDEX contact_digits_contact ON contact_digits (owner, contact_id);

CREATE TABLE tags (
    owner BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    modified_at BIGINT,
    PRIMARY KEY (owner, id)
);

-- Which contacts carry which tag: tag searches, and untagging when a tag is deleted.
CREATE TABLE contact_tags (
    owner BIGINT NOT NULL,
    tag_id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    PRIMARY KEY (owner, tag_id, contact_id),
    FOREIGN KEY (owner, contact_id) REFERENCES contacts (owner, id) ON DELETE CASCADE,
    FOREIGN KEY (owner, tag_id) REFERENCES tags (owner, id) ON DELETE CASCADE
);
CREATE INDEX contact_tags_contact ON contact_tags (owner, contact_id);

-- Every suffix, cut to 24 characters, of the lower-cased name and of each lower-cased email,
-- so that a name or email search is an index range too: "yan" is a prefix of the suffix
-- "yan" of "haiyan". Longer keywords match on their first 24 characters and are rechecked.
CREATE TABLE contact_terms (
    owner BIGINT NOT NULL,
    term TEXT NOT NULL,
    contact_id BIGINT NOT NULL,
    PRIMARY KEY (owner, term, contact_id),
    FOREIGN KEY (owner, contact_id) REFERENCES contacts (owner, id) ON DELETE CASCADE
);
CREATE INDEX contact_terms_contact ON contact_terms (owner, contact_id);
