-- The address book's derived index tables lose their foreign keys to contacts (SQLite).
-- Keep in step with ../../postgres/2026-11-23-000005_addressbook_index_fks/up.sql, which says
-- why. SQLite cannot drop a constraint, so each table is rebuilt.
CREATE TABLE contact_digits_new (
    owner BIGINT NOT NULL,
    digits TEXT NOT NULL,
    contact_id BIGINT NOT NULL,
    PRIMARY KEY (owner, digits, contact_id)
);
INSERT INTO contact_digits_new SELECT owner, digits, contact_id FROM contact_digits;
DROP TABLE contact_digits;
ALTER TABLE contact_digits_new RENAME TO contact_digits;
CREATE INDEX contact_digits_contact ON contact_digits (owner, contact_id);

CREATE TABLE contact_terms_new (
    owner BIGINT NOT NULL,
    term TEXT NOT NULL,
    contact_id BIGINT NOT NULL,
    PRIMARY KEY (owner, term, contact_id)
);
INSERT INTO contact_terms_new SELECT owner, term, contact_id FROM contact_terms;
DROP TABLE contact_terms;
ALTER TABLE contact_terms_new RENAME TO contact_terms;
CREATE INDEX contact_terms_contact ON contact_terms (owner, contact_id);

CREATE TABLE contact_tags_new (
    owner BIGINT NOT NULL,
    tag_id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    PRIMARY KEY (owner, tag_id, contact_id),
    FOREIGN KEY (owner, tag_id) REFERENCES tags (owner, id) ON DELETE CASCADE
);
INSERT INTO contact_tags_new SELECT owner, tag_id, contact_id FROM contact_tags;
DROP TABLE contact_tags;
ALTER TABLE contact_tags_new RENAME TO contact_tags;
CREATE INDEX contact_tags_contact ON contact_tags (owner, contact_id);
