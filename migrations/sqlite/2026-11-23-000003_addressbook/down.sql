DROP TABLE contact_terms;
DROP TABLE contact_tags;
DROP TABLE tags;
DROP TABLE contact_digits;
DROP TABLE contacts;
