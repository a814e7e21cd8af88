-- Double opt-in and sending: subscriptions waiting for their code, the codes, and what the sender and the
-- gateway's delivery reports record about each message.

-- A subscription waits here until its number confirms; only then does it move to subscriptions (same id), so
-- everything that plans alerts from subscriptions only ever sees confirmed ones.
CREATE TABLE pending_subscriptions (
    id uuid PRIMARY KEY,
    phone_hash text NOT NULL REFERENCES phones ON DELETE CASCADE,
    -- Applied to the number when it confirms, not before: a stranger cannot change a confirmed number's settings.
    language text NOT NULL CHECK (language IN ('uk', 'en')),
    latin boolean NOT NULL,
    kind text NOT NULL CHECK (kind IN ('point', 'area')),
    point_id uuid,
    lat double precision,
    lon double precision,
    radius_m integer,
    cells bigint[] NOT NULL DEFAULT '{}',
    services text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX pending_subscriptions_phone_idx ON pending_subscriptions (phone_hash);
CREATE INDEX pending_subscriptions_expiry_idx ON pending_subscriptions (expires_at);

-- The one live code of a number (a new request replaces it). Stored as an HMAC under the phone key, never in clear;
-- a few wrong tries burn it.
CREATE TABLE confirmation_codes (
    phone_hash text PRIMARY KEY REFERENCES phones ON DELETE CASCADE,
    -- What the code confirms: pending subscriptions, or removing the number's subscriptions.
    purpose text NOT NULL CHECK (purpose IN ('subscribe', 'unsubscribe')),
    code_hash text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

-- The sender: which process holds a message being sent (so a restart marks only stale claims 'unknown', never a
-- live replica's), the gateway's id for it, and the last delivery report.
ALTER TABLE sms_messages
    ADD COLUMN claimed_by uuid,
    ADD COLUMN claimed_at timestamptz,
    ADD COLUMN provider_id text,
    ADD COLUMN dlr_type integer,
    ADD COLUMN dlr_at timestamptz;

CREATE INDEX sms_messages_sending_idx ON sms_messages (claimed_at) WHERE state = 'sending';
