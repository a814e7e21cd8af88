-- Every message's dedup key names its phone, so the key is unique per phone, and one index on both finds a
-- number's messages as well (STOP cancels them, support lists them): an alert at the start of a blackout queues a
-- message for most subscribers at once, and each writes one index fewer.
ALTER TABLE sms_messages ADD CONSTRAINT sms_messages_phone_dedup_key UNIQUE (phone_hash, dedup_key);
ALTER TABLE sms_messages DROP CONSTRAINT sms_messages_dedup_key_key;
DROP INDEX sms_messages_phone_idx;
