-- The relay no longer listens: a NOTIFY takes PostgreSQL's global notify-queue lock at commit, which serialised
-- every committing transaction that wrote an event. Relays are woken in process (poi_shared.outbox.committed) and
-- otherwise poll on a short interval.
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
DROP FUNCTION IF EXISTS outbox_notify();
