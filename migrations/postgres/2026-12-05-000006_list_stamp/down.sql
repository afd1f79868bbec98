ALTER TABLE users DROP COLUMN list_stamp;
