-- Sessions by gateway and status, for the gateways view: kept by triggers,
-- so every writer of `sessions` (imports, the session feed, removals)
-- updates them in its own transaction, and reading them never counts rows.
-- Sessions without a gateway count under ''.
CREATE TABLE session_status_counts (
    gateway_id TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    sessions   INTEGER NOT NULL,
    PRIMARY KEY (gateway_id, status)
) WITHOUT ROWID;

INSERT INTO session_status_counts (gateway_id, status, sessions)
    SELECT COALESCE(gateway_id, ''), status, COUNT(*) FROM sessions GROUP BY 1, 2;

CREATE TRIGGER sessions_counted_on_insert AFTER INSERT ON sessions
BEGIN
    INSERT INTO session_status_counts (gateway_id, status, sessions)
        VALUES (COALESCE(NEW.gateway_id, ''), NEW.status, 1)
        ON CONFLICT (gateway_id, status) DO UPDATE SET sessions = sessions + 1;
END;

CREATE TRIGGER sessions_counted_on_delete AFTER DELETE ON sessions
BEGIN
    UPDATE session_status_counts SET sessions = sessions - 1
        WHERE gateway_id = COALESCE(OLD.gateway_id, '') AND status = OLD.status;
END;

CREATE TRIGGER sessions_counted_on_update AFTER UPDATE OF gateway_id, status ON sessions
    WHEN OLD.gateway_id IS NOT NEW.gateway_id OR OLD.status IS NOT NEW.status
BEGIN
    UPDATE session_status_counts SET sessions = sessions - 1
        WHERE gateway_id = COALESCE(OLD.gateway_id, '') AND status = OLD.status;
    INSERT INTO session_status_counts (gateway_id, status, sessions)
        VALUES (COALESCE(NEW.gateway_id, ''), NEW.status, 1)
        ON CONFLICT (gateway_id, status) DO UPDATE SET sessions = sessions + 1;
END;
