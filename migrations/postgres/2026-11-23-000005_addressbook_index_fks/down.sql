ALTER TABLE contact_tags ADD CONSTRAINT contact_tags_owner_contact_id_fkey
    FOREIGN KEY (owner, contact_id) REFERENCES contacts (owner, id) ON DELETE CASCADE;
ALTER TABLE contact_digits ADD CONSTRAINT contact_digits_owner_contact_id_fkey
    FOREIGN KEY (owner, contact_id) REFERENCES contacts (owner, id) ON DELETE CASCADE;
ALTER TABLE contact_terms ADD CONSTRAINT contact_terms_owner_contact_id_fkey
    FOREIGN KEY (owner, contact_id) REFERENCES contacts (owner, id) ON DELETE CASCADE;
