-- Webhooks for integrators: endpoints with their filters, the points they are matched against, and every
-- delivery (an outbox the delivery loop drains, retrying with backoff until delivered or dead).

-- Where each point is and who may see it, from registry events: a status event names only its point, and a
-- webhook's area filter needs the point's KATOTTH code and place. Hidden points are never delivered.
CREATE TABLE webhook_points (
    point_id uuid PRIMARY KEY,
    version bigint NOT NULL,
    katotth text NOT NULL,
    -- The public place: rounded for coarse points, so a radius filter learns no more than search shows.
    lat double precision NOT NULL,
    lon double precision NOT NULL,
    visibility text NOT NULL CHECK (visibility IN ('public', 'coarse', 'hidden')),
    retired boolean NOT NULL DEFAULT false
);

CREATE TABLE webhooks (
    id uuid PRIMARY KEY,
    -- The integrator's token subject: each sees and changes only its own endpoints.
    owner text NOT NULL,
    url text NOT NULL,
    description text,
    -- The HMAC-SHA256 key deliveries are signed with; shown to the integrator once, when registered.
    secret text NOT NULL,
    event_types text[] NOT NULL CHECK (cardinality(event_types) > 0),
    -- Area filter: a point matches when its KATOTTH code starts with one of the prefixes or it lies within the
    -- disk; with neither, every point matches.
    katotth_prefixes text[] NOT NULL DEFAULT '{}',
    lat double precision,
    lon double precision,
    radius_m integer,
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((lat IS NULL AND lon IS NULL AND radius_m IS NULL)
        OR (lat IS NOT NULL AND lon IS NOT NULL AND radius_m > 0))
);

CREATE INDEX webhooks_owner_idx ON webhooks (owner, created_at);

-- One row per matching status event per webhook, written in the same transaction as the consumer's inbox claim.
CREATE TABLE webhook_deliveries (
    id uuid PRIMARY KEY,
    -- Pages of an endpoint's deliveries are in this order.
    seq bigserial NOT NULL UNIQUE,
    webhook_id uuid NOT NULL REFERENCES webhooks ON DELETE CASCADE,
    event_id text NOT NULL,
    event_type text NOT NULL,
    -- The CloudEvent exactly as it is POSTed (and signed): a retry or a replay sends the same bytes.
    body text NOT NULL,
    -- pending → delivered, or → dead after the last allowed attempt; a replay makes a delivery pending again.
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status integer,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    UNIQUE (webhook_id, event_id)
);

CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, seq);
CREATE INDEX webhook_deliveries_dead_idx ON webhook_deliveries (webhook_id) WHERE state = 'dead';

-- Status events about points no registry event has described yet (the two streams are consumed apart): matched
-- against the filters when the point's event arrives, so none is lost or sent unchecked.
CREATE TABLE webhook_waiting_events (
    event_id text PRIMARY KEY,
    point_id uuid NOT NULL,
    event_type text NOT NULL,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_waiting_events_point_idx ON webhook_waiting_events (point_id);
