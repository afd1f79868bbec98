DROP TABLE changes;
DROP TABLE settings;
DROP TABLE sessions;
DROP TABLE verification_tokens;
DROP TABLE sms_codes;
DROP TABLE users;
