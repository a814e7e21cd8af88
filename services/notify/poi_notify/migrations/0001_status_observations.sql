-- Every status event notify has handled, exactly once each: what alerts will be planned from.
CREATE TABLE status_observations (
    event_id text PRIMARY KEY,
    point_id uuid NOT NULL,
    version bigint NOT NULL,
    state text NOT NULL,
    reported_at timestamptz NOT NULL,
    observed_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX status_observations_point_idx ON status_observations (point_id, version);
