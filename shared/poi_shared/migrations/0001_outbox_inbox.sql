-- Transactional outbox: written in the business transaction, drained by the relay.
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    subject text NOT NULL,
    headers jsonb NOT NULL,
    body bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Wake the relay once per inserting statement instead of making it poll.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('poi_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Inbox: the events each consumer has already handled.
CREATE TABLE inbox (
    consumer text NOT NULL,
    event_id text NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
