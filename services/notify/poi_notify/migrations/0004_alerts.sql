-- Alerts: what notify knows of each point, the changes waiting to be planned, and each phone's message window.

-- The public part of every point the registry announced, and its current live state. A status event may come
-- before the point's first registry event: the row then has a state but no place (known = false) and alerts
-- nobody until the point is known. Hidden points keep no name, address or place at all.
CREATE TABLE alert_points (
    id uuid PRIMARY KEY,
    known boolean NOT NULL DEFAULT false,
    version bigint NOT NULL DEFAULT 0,
    code text,
    name_uk text,
    name_en text,
    -- What the public may be told: the address of a public point, the settlement of a coarse one.
    address_uk text,
    address_en text,
    settlement text,
    lat double precision,
    lon double precision,
    -- poi_notify.cells.cell_of(lat, lon): the one cell area subscriptions are looked up by.
    cell bigint,
    services text[] NOT NULL DEFAULT '{}',
    katotth text,
    visibility text NOT NULL DEFAULT 'hidden' CHECK (visibility IN ('public', 'coarse', 'hidden')),
    retired boolean NOT NULL DEFAULT false,
    status_version bigint NOT NULL DEFAULT 0,
    state text NOT NULL DEFAULT 'unknown',
    state_changed_at timestamptz
);

-- Status changes that may alert someone, waiting for the planner (which deletes them in the transaction that
-- plans them, so a change is planned exactly once even if notify stops in between).
CREATE TABLE alert_queue (
    id bigserial PRIMARY KEY,
    point_id uuid NOT NULL,
    status_version bigint NOT NULL,
    -- opened, closed, full, places_again (subscribers); stale, low_fuel (coordinator contacts)
    change text NOT NULL,
    urgent boolean NOT NULL,
    fuel_hours real,
    queued_at timestamptz NOT NULL DEFAULT now()
);

-- One row per phone and channel (alert: residents; ops: coordinator contacts): the phone's current window.
-- At most one message per window, and a window starts no earlier than alert_window_s after the last message.
CREATE TABLE alert_windows (
    phone_hash text NOT NULL REFERENCES phones ON DELETE CASCADE,
    channel text NOT NULL CHECK (channel IN ('alert', 'ops')),
    window_start timestamptz NOT NULL,
    -- When the window's one message is composed and queued (later for non-urgent news in quiet hours).
    flush_at timestamptz NOT NULL,
    urgent boolean NOT NULL,
    -- An area subscription heard of a point opening: the message names the nearest open points when it goes.
    area boolean NOT NULL DEFAULT false,
    flushed_at timestamptz,
    PRIMARY KEY (phone_hash, channel)
);

CREATE INDEX alert_windows_due_idx ON alert_windows (flush_at) WHERE flushed_at IS NULL;

-- What a window's message will say of single points (followed points, ops): each point's latest change.
CREATE TABLE alert_changes (
    phone_hash text NOT NULL,
    channel text NOT NULL,
    window_start timestamptz NOT NULL,
    point_id uuid NOT NULL,
    change text NOT NULL,
    status_version bigint NOT NULL,
    fuel_hours real,
    PRIMARY KEY (phone_hash, channel, window_start, point_id),
    FOREIGN KEY (phone_hash, channel) REFERENCES alert_windows ON DELETE CASCADE
);

-- Coordinator contacts: an admin registers a number for a region (a KATOTTH prefix); ops alerts of points there
-- go to it. The number's phones row is marked is_contact.
CREATE TABLE alert_contacts (
    id uuid PRIMARY KEY,
    phone_hash text NOT NULL REFERENCES phones ON DELETE CASCADE,
    katotth_prefix text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (phone_hash, katotth_prefix)
);
