-- Live status: what status keeps of each point, the full current state, its history, visitors, idempotent reports.

-- What status needs of the register, from its events: scope and area, capacity (derived full), the services a
-- report may speak of, whether an area activation concerns it, and whether the public may see it. Rows known
-- before this migration keep these defaults until the registry's next event about the point.
ALTER TABLE known_points
    ADD COLUMN code text,
    ADD COLUMN name_uk text,
    ADD COLUMN settlement text,
    ADD COLUMN category text NOT NULL DEFAULT 'state',
    ADD COLUMN capacity integer,
    ADD COLUMN services text[] NOT NULL DEFAULT '{}',
    ADD COLUMN schedule_kind text NOT NULL DEFAULT 'always',
    ADD COLUMN visibility text NOT NULL DEFAULT 'public',
    -- The transaction that last wrote the row: replicas refresh their in-memory directory of points from it.
    ADD COLUMN written_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX known_points_katotth_idx ON known_points (katotth text_pattern_ops);
CREATE INDEX known_points_written_xid_idx ON known_points (written_xid);

-- Every known point has a current status; version 0 means it never had one (state unknown, nothing reported).
ALTER TABLE point_status
    ALTER COLUMN reported_by DROP NOT NULL,
    ALTER COLUMN reported_at DROP NOT NULL,
    ADD COLUMN previous_state text,
    ADD COLUMN cause text NOT NULL DEFAULT 'report',
    ADD COLUMN services jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN power text,
    ADD COLUMN fuel_hours double precision,
    ADD COLUMN low_fuel boolean NOT NULL DEFAULT false,
    ADD COLUMN internet text,
    ADD COLUMN occupancy integer,
    ADD COLUMN capacity integer,
    ADD COLUMN changed_at timestamptz,
    -- The reported_at of the last version whose event was published: confirmations are coalesced against it.
    ADD COLUMN published_reported_at timestamptz;
UPDATE point_status SET changed_at = reported_at, published_reported_at = reported_at;
INSERT INTO point_status (point_id, version, state) SELECT id, 0, 'unknown' FROM known_points
    ON CONFLICT (point_id) DO NOTHING;
-- The stale sweep looks only at points that claim to take people.
CREATE INDEX point_status_claims_idx ON point_status (reported_at) WHERE state IN ('open', 'full');
CREATE INDEX point_status_low_fuel_idx ON point_status (fuel_hours) WHERE low_fuel;

-- The append-only history: every version of every point's status, with what made it.
ALTER TABLE status_reports
    ALTER COLUMN reported_by DROP NOT NULL,
    ADD COLUMN previous_state text,
    ADD COLUMN cause text NOT NULL DEFAULT 'report',
    ADD COLUMN services jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN power text,
    ADD COLUMN fuel_hours double precision,
    ADD COLUMN low_fuel boolean NOT NULL DEFAULT false,
    ADD COLUMN internet text,
    ADD COLUMN occupancy integer,
    ADD COLUMN capacity integer,
    ADD COLUMN changed_at timestamptz,
    ADD COLUMN served integer NOT NULL DEFAULT 0;

-- People served, per point and day (Kyiv time), with the point's area for regional totals.
CREATE TABLE visitors_daily (
    point_id uuid NOT NULL,
    day date NOT NULL,
    katotth text NOT NULL,
    served bigint NOT NULL,
    PRIMARY KEY (point_id, day)
);
CREATE INDEX visitors_daily_day_idx ON visitors_daily (day, katotth text_pattern_ops);

-- Reports sent with an Idempotency-Key: a retry finds the version its first attempt made and answers with it.
CREATE TABLE report_requests (
    point_id uuid NOT NULL,
    caller text NOT NULL,
    key text NOT NULL,
    request_hash bytea NOT NULL,
    version bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (point_id, caller, key)
);
CREATE INDEX report_requests_created_at_idx ON report_requests (created_at);
