-- Phone keys are HMAC digests in hex: their order is byte order. Under the database's default collation (C.UTF-8
-- here, a libc locale to PostgreSQL 15) every sort and index step on them calls strcoll and sorts without
-- abbreviated keys; "C" compares bytes. An alert at the start of a blackout sorts and indexes a key per subscriber
-- (windows, messages), so it is most of what the planner and the flusher compare. The tables are not rewritten, but
-- every index on these columns is rebuilt with each table locked: deploy it outside a blackout.
ALTER TABLE phones ALTER COLUMN phone_hash TYPE text COLLATE "C";
ALTER TABLE subscriptions ALTER COLUMN phone_hash TYPE text COLLATE "C";
ALTER TABLE pending_subscriptions ALTER COLUMN phone_hash TYPE text COLLATE "C";
ALTER TABLE confirmation_codes ALTER COLUMN phone_hash TYPE text COLLATE "C";
ALTER TABLE alert_contacts ALTER COLUMN phone_hash TYPE text COLLATE "C";
ALTER TABLE sms_messages
    ALTER COLUMN phone_hash TYPE text COLLATE "C",
    ALTER COLUMN dedup_key TYPE text COLLATE "C";
ALTER TABLE alert_changes
    ALTER COLUMN phone_hash TYPE text COLLATE "C",
    ALTER COLUMN channel TYPE text COLLATE "C";
ALTER TABLE alert_windows
    ALTER COLUMN phone_hash TYPE text COLLATE "C",
    ALTER COLUMN channel TYPE text COLLATE "C";
