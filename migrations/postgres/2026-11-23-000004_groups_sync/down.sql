DROP TABLE captchas;
DROP TABLE sync_floors;
DROP INDEX changes_at;
ALTER TABLE changes DROP COLUMN detail;
DROP TABLE group_members;
DROP TABLE chat_groups;
