-- The W3C traceparent of the event that caused a change, carried to the SMS it ends in, so the sender's span
-- joins the trace of the operator's report. Nullable: rows queued before, and messages no trace caused.
ALTER TABLE alert_queue ADD COLUMN traceparent text;
ALTER TABLE alert_changes ADD COLUMN traceparent text;
ALTER TABLE sms_messages ADD COLUMN traceparent text;
