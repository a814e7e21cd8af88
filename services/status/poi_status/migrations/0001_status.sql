-- What status knows of the register: enough to check a report's point and the caller's scope.
CREATE TABLE known_points (
    id uuid PRIMARY KEY,
    version bigint NOT NULL,
    katotth text NOT NULL,
    retired boolean NOT NULL DEFAULT false
);

-- The current status of each point.
CREATE TABLE point_status (
    point_id uuid PRIMARY KEY,
    version bigint NOT NULL,
    state text NOT NULL,
    note text,
    reported_by text NOT NULL,
    reported_at timestamptz NOT NULL
);

-- Every report ever made.
CREATE TABLE status_reports (
    id bigserial PRIMARY KEY,
    point_id uuid NOT NULL,
    version bigint NOT NULL,
    state text NOT NULL,
    note text,
    reported_by text NOT NULL,
    reported_at timestamptz NOT NULL,
    UNIQUE (point_id, version)
);
