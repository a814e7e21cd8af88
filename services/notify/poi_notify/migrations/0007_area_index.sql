-- Each notify replica keeps the area subscriptions in memory, indexed by H3 cell, and brings them up to date
-- before it plans: it reads only what changed since its last look, found by the id of the transaction that wrote it.

-- The transaction that added the subscription. A replica reads the rows whose transaction is not older than the
-- oldest one still running at its previous look (pg_snapshot_xmin): a row committed late is never missed.
ALTER TABLE subscriptions ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX subscriptions_area_txid_idx ON subscriptions (txid) WHERE kind = 'area';

-- Area subscriptions removed, so replicas drop them from memory the same way; kept a while, then pruned.
CREATE TABLE subscription_removals (
    id uuid NOT NULL,
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    removed_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX subscription_removals_txid_idx ON subscription_removals (txid);
CREATE INDEX subscription_removals_age_idx ON subscription_removals (removed_at);
