-- The address book's derived index tables lose their foreign keys to contacts (PostgreSQL).
-- Keep in step with ../../sqlite/2026-11-23-000005_addressbook_index_fks/up.sql.
--
-- Why: contact_terms, contact_digits and contact_tags are derived from their contact and are
-- written and deleted with it in one transaction by crates/store/src/addressbook.rs, so the
-- foreign keys guarded nothing the code does not already do. They cost one check per index
-- row (about 50 per contact), and PostgreSQL planned that check, once per connection while the
-- table was still empty, on contacts_owner_name (owner, name_lower, id): a walk over the
-- owner's whole book for every row. A 100,000-contact book then took hours to fill
-- (docs/benchmarks.md). `kith check` reports any orphan index row.
ALTER TABLE contact_terms DROP CONSTRAINT contact_terms_owner_contact_id_fkey;
ALTER TABLE contact_digits DROP CONSTRAINT contact_digits_owner_contact_id_fkey;
ALTER TABLE contact_tags DROP CONSTRAINT contact_tags_owner_contact_id_fkey;
