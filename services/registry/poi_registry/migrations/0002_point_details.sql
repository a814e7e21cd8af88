-- The point grows into the national register's record: code, host, addresses, schedule, contacts.
CREATE SEQUENCE point_code_seq;

ALTER TABLE points RENAME COLUMN address TO address_uk;
ALTER TABLE points RENAME COLUMN facilities TO services;
ALTER TABLE points
    ADD COLUMN code text,
    ADD COLUMN host_type text NOT NULL DEFAULT 'other',
    ADD COLUMN address_en text,
    ADD COLUMN settlement text,
    ADD COLUMN schedule jsonb NOT NULL DEFAULT '{"kind": "always", "hours": [], "note": null}',
    ADD COLUMN operator_org text,
    ADD COLUMN public_phone text,
    ADD COLUMN contact_phone text;

-- Points registered before this migration get a code and take their settlement from the address's last part.
UPDATE points SET code = substr(katotth, 3, 2) || '-' || lpad(nextval('point_code_seq')::text, 6, '0'),
                  settlement = regexp_replace(address_uk, '^.*,\s*', '');
ALTER TABLE points ALTER COLUMN code SET NOT NULL, ALTER COLUMN settlement SET NOT NULL;
CREATE UNIQUE INDEX points_code_idx ON points (code);
