CREATE TABLE points (
    id uuid PRIMARY KEY,
    version bigint NOT NULL DEFAULT 1,
    name_uk text NOT NULL,
    name_en text,
    category text NOT NULL,
    lat double precision NOT NULL,
    lon double precision NOT NULL,
    katotth text NOT NULL,
    address text NOT NULL,
    capacity integer NOT NULL CHECK (capacity > 0),
    facilities text[] NOT NULL DEFAULT '{}',
    visibility text NOT NULL DEFAULT 'public',
    retired_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A coordinator's scope is a code prefix.
CREATE INDEX points_katotth_idx ON points (katotth text_pattern_ops);
