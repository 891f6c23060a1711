-- Sessions of every organization. Listing pages by `id` (keyset), so each
-- filter has an index whose last column is `id`.
CREATE TABLE sessions (
    id                 TEXT    NOT NULL PRIMARY KEY,
    organization_id    TEXT    NOT NULL,
    created_by_user_id TEXT,
    gateway_id         TEXT,
    label              TEXT,
    phone_number       TEXT,
    wa_jid             TEXT,
    wa_lid             TEXT,
    status             TEXT    NOT NULL
        CHECK (status IN ('stopped', 'starting', 'scan_qr_code', 'working', 'failed')),
    auto_read          INTEGER NOT NULL DEFAULT 0,
    presence_typing    INTEGER NOT NULL DEFAULT 0,
    is_admin_session   INTEGER NOT NULL DEFAULT 0,
    rate_per_min       INTEGER,
    rate_per_hour      INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    last_connected_at  INTEGER
);

CREATE INDEX sessions_by_org     ON sessions (organization_id, id);
CREATE INDEX sessions_by_status  ON sessions (status, id);
CREATE INDEX sessions_by_gateway ON sessions (gateway_id, id);

-- Server-side secrets that must survive restarts (the cursor signing key).
CREATE TABLE server_secrets (
    name  TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
);
