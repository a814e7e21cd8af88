-- The national register: ordered visibility with per-oblast policies, audit history, idempotent creates.

-- Declared from least to most strict, so GREATEST(a, b) is the stricter of two.
CREATE TYPE point_visibility AS ENUM ('public', 'coarse', 'hidden');

-- An admin may force every point of an oblast to be at least this strict (frontline oblasts).
CREATE TABLE oblast_policies (
    oblast text PRIMARY KEY CHECK (oblast ~ '^UA[0-9]{2}$'),
    visibility point_visibility NOT NULL,
    set_by text NOT NULL,
    set_at timestamptz NOT NULL DEFAULT now()
);

-- The visibility the public gets: the point's own, raised by its oblast's policy.
CREATE FUNCTION effective_visibility(own point_visibility, katotth text) RETURNS point_visibility
    LANGUAGE sql STABLE
    AS $$ SELECT GREATEST(own, (SELECT p.visibility FROM oblast_policies p WHERE p.oblast = left(katotth, 4))) $$;

ALTER TABLE points ALTER COLUMN visibility DROP DEFAULT;
ALTER TABLE points ALTER COLUMN visibility TYPE point_visibility USING visibility::point_visibility;
ALTER TABLE points ALTER COLUMN visibility SET DEFAULT 'public';
ALTER TABLE points ADD COLUMN effective_visibility point_visibility;
UPDATE points SET effective_visibility = visibility;
ALTER TABLE points ALTER COLUMN effective_visibility SET NOT NULL;
ALTER TABLE points ADD CONSTRAINT points_capacity_range CHECK (capacity BETWEEN 1 AND 10000);

-- Lists page by code; "changed since" filters by updated_at.
CREATE INDEX points_updated_at_idx ON points (updated_at);

-- Who changed what, when: one entry per version of a point.
CREATE TABLE point_history (
    point_id uuid NOT NULL REFERENCES points (id),
    version bigint NOT NULL,
    action text NOT NULL,
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL,
    reason text,
    changes jsonb NOT NULL,
    PRIMARY KEY (point_id, version)
);

-- A retried create with the same key returns the first result; keys are pruned after a day.
CREATE TABLE idempotency_keys (
    subject text NOT NULL,
    key text NOT NULL,
    fingerprint text NOT NULL,
    response jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
