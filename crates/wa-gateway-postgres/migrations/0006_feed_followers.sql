-- Cluster mode: one replica follows each gateway's session feed at a time.
-- A lease row per gateway, taken when free or expired, renewed by its holder
-- together with what it reports (so any replica answers the gateways view),
-- and the replicas alive, for spreading gateways evenly. Times are the
-- database's clock, in ms since the epoch.
CREATE TABLE feed_followers (
    gateway_id        TEXT    COLLATE "C" PRIMARY KEY,
    follower          TEXT    NOT NULL,
    lease_expires_at  BIGINT  NOT NULL,
    feed              TEXT    NOT NULL,
    host_url          TEXT    NOT NULL,
    last_snapshot_at  BIGINT,
    last_event_at     BIGINT,
    last_error        TEXT,
    held_removals     BIGINT  NOT NULL DEFAULT 0,
    accept_requested  BOOLEAN NOT NULL DEFAULT false
);

CREATE TABLE feed_replicas (
    replica     TEXT   COLLATE "C" PRIMARY KEY,
    seen_until  BIGINT NOT NULL
);
