CREATE TABLE contact_digits_old (
    owner BIGINT NOT NULL,
    digits TEXT NOT NULL,
    contact_id BIGINT NOT NULL,
    PRIMARY KEY (owner, digits, contact_id),
    FOREIGN KEY (owner, contact_id) REFERENCES contacts (owner, id) ON DELETE CASCADE
);
INSERT INTO contact_digits_old SELECT owner, digits, contact_id FROM contact_digits;
DROP TABLE contact_digits;
ALTER TABLE contact_digits_old RENAME TO contact_digits;
CREATE INDEX contact_digits_contact ON contact_digits (owner, contact_id);

CREATE TABLE contact_terms_old (
    owner BIGINT NOT NULL,
    term TEXT NOT NULL,
    contact_id BIGINT NOT NULL,
    PRIMARY KEY (owner, term, contact_id),
    FOREIGN KEY (owner, contact_id) REFERENCES contacts (owner, id) ON DELETE CASCADE
);
INSERT INTO contact_terms_old SELECT owner, term, contact_id FROM contact_terms;
DROP TABLE contact_terms;
ALTER TABLE contact_terms_old RENAME TO contact_terms;
CREATE INDEX contact_terms_contact ON contact_terms (owner, contact_id);

CREATE TABLE contact_tags_old (
    owner BIGINT NOT NULL,
    tag_id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    PRIMARY KEY (owner, tag_id, contact_id),
    FOREIGN KEY (owner, contact_id) REFERENCES contacts (owner, id) ON DELETE CASCADE,
    FOREIGN KEY (owner, tag_id) REFERENCES tags (owner, id) ON DELETE CASCADE
);
INSERT INTO contact_tags_old SELECT owner, tag_id, contact_id FROM contact_tags;
DROP TABLE contact_tags;
ALTER TABLE contact_tags_old RENAME TO contact_tags;
CREATE INDEX contact_tags_contact ON contact_tags (owner, contact_id);
