-- An alert at the start of a blackout writes a window and a message for most subscribers at once. A foreign key
-- check on each of those rows locks the phone's row (one more write per message) for a guarantee the code gives
-- already: a window or a message is only ever written for a phone read in the same transaction, and phones are
-- never deleted (STOP keeps the row, with stopped_at).
ALTER TABLE sms_messages DROP CONSTRAINT sms_messages_phone_hash_fkey;
ALTER TABLE alert_windows DROP CONSTRAINT alert_windows_phone_hash_fkey;
