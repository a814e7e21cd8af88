-- The SMS side of notify: numbers, what they subscribed to, and every message (an outbox the sender drains).

-- One row per number. The number is kept only because messages must reach it; everything that leaves
-- the service (logs, traces, metrics, exports) names it by phone_hash, an HMAC under a secret key.
CREATE TABLE phones (
    phone_hash text PRIMARY KEY,
    e164 text NOT NULL UNIQUE,
    language text NOT NULL CHECK (language IN ('uk', 'en')),
    -- Ukrainian text in Latin letters (KMU-55): 160 characters per part instead of 70, where cost matters.
    latin boolean NOT NULL DEFAULT false,
    -- Double opt-in: nothing but the confirmation code is ever sent before this is set.
    confirmed_at timestamptz,
    -- STOP / СТОП: nothing at all is sent while this is set; START clears it.
    stopped_at timestamptz,
    -- A coordinator contact (ops alerts for a region), registered by an admin rather than by opt-in.
    is_contact boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscriptions (
    id uuid PRIMARY KEY,
    phone_hash text NOT NULL REFERENCES phones ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('point', 'area')),
    point_id uuid,
    lat double precision,
    lon double precision,
    radius_m integer,
    -- H3 cells (poi_notify.cells.RESOLUTION) covering the area's disk: a change at a point finds its area
    -- subscribers through the point's one cell, never by scanning every subscription.
    cells bigint[] NOT NULL DEFAULT '{}',
    -- Only alert for points offering all of these services (poi_shared.contracts.Service values); empty: any.
    services text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'point' AND point_id IS NOT NULL AND lat IS NULL)
        OR (kind = 'area' AND point_id IS NULL AND lat IS NOT NULL AND lon IS NOT NULL AND radius_m > 0))
);

CREATE UNIQUE INDEX subscriptions_point_once ON subscriptions (phone_hash, point_id) WHERE kind = 'point';
CREATE INDEX subscriptions_point_idx ON subscriptions (point_id) WHERE kind = 'point';
CREATE INDEX subscriptions_cells_idx ON subscriptions USING gin (cells) WHERE kind = 'area';
CREATE INDEX subscriptions_phone_idx ON subscriptions (phone_hash);

-- Every SMS, written in the same transaction as what caused it and sent by the sender loop. dedup_key makes
-- enqueueing idempotent: a redelivered event or a retried request cannot queue a second message.
CREATE TABLE sms_messages (
    id uuid PRIMARY KEY,
    dedup_key text NOT NULL UNIQUE,
    phone_hash text NOT NULL REFERENCES phones ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('confirmation', 'alert', 'ops', 'lookup', 'reply')),
    body text NOT NULL,
    parts smallint NOT NULL CHECK (parts BETWEEN 1 AND 3),
    -- Non-urgent messages wait for the end of quiet hours; alerts for one window wait for its end.
    not_before timestamptz NOT NULL DEFAULT now(),
    -- queued → sending → sent → delivered | failed; 'unknown' when the process died mid-send (never resent:
    -- at most once); 'cancelled' when STOP arrived first.
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'unknown', 'cancelled')),
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    delivered_at timestamptz
);

CREATE INDEX sms_messages_due_idx ON sms_messages (not_before) WHERE state = 'queued';
CREATE INDEX sms_messages_phone_idx ON sms_messages (phone_hash, created_at);
