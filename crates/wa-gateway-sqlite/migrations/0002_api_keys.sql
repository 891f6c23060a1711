-- api-keys for scripts and services. The secret is stored only as its
-- SHA-256 (the secret has ~238 bits of entropy, so a slow hash adds nothing).
CREATE TABLE api_keys (
    id              TEXT    NOT NULL PRIMARY KEY,
    organization_id TEXT    NOT NULL,
    name            TEXT,
    permissions     TEXT    NOT NULL,  -- JSON array of strings
    secret_hash     BLOB    NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER,
    revoked_at      INTEGER
);
