-- Sessions of every organization. Listing pages by `id` (keyset); every
-- combination of filters has an index of the filter columns followed by `id`.
-- COLLATE "C" keeps ids in byte order, as on SQLite, so cursors and page
-- order agree between backends and replicas.
CREATE TABLE sessions (
    id                 TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    organization_id    TEXT COLLATE "C" NOT NULL,
    created_by_user_id TEXT,
    gateway_id         TEXT COLLATE "C",
    label              TEXT,
    phone_number       TEXT,
    wa_jid             TEXT,
    wa_lid             TEXT,
    status             TEXT NOT NULL
        CHECK (status IN ('stopped', 'starting', 'scan_qr_code', 'working', 'failed')),
    auto_read          BOOLEAN NOT NULL DEFAULT false,
    presence_typing    BOOLEAN NOT NULL DEFAULT false,
    is_admin_session   BOOLEAN NOT NULL DEFAULT false,
    rate_per_min       INTEGER,
    rate_per_hour      INTEGER,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL,
    last_connected_at  BIGINT
);

CREATE INDEX sessions_by_org                ON sessions (organization_id, id);
CREATE INDEX sessions_by_status             ON sessions (status, id);
CREATE INDEX sessions_by_gateway            ON sessions (gateway_id, id);
CREATE INDEX sessions_by_org_status         ON sessions (organization_id, status, id);
CREATE INDEX sessions_by_org_gateway        ON sessions (organization_id, gateway_id, id);
CREATE INDEX sessions_by_status_gateway     ON sessions (status, gateway_id, id);
CREATE INDEX sessions_by_org_status_gateway ON sessions (organization_id, status, gateway_id, id);

-- Organizations map onto gateways and statuses are skewed: without these the
-- planner assumes the filters are independent, expects many matches, and
-- walks the primary key past rows that do not match.
CREATE STATISTICS sessions_filter_stats (dependencies, mcv)
    ON organization_id, status, gateway_id FROM sessions;

-- Server-side secrets that must survive restarts (the cursor signing key).
CREATE TABLE server_secrets (
    name  TEXT  NOT NULL PRIMARY KEY,
    value BYTEA NOT NULL
);

-- api-keys for scripts and services; the secret is stored only as SHA-256.
CREATE TABLE api_keys (
    id              TEXT   NOT NULL PRIMARY KEY,
    organization_id TEXT   NOT NULL,
    name            TEXT,
    permissions     TEXT   NOT NULL,  -- JSON array of strings
    secret_hash     BYTEA  NOT NULL UNIQUE,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT,
    revoked_at      BIGINT
);
