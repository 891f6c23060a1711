-- Sessions by gateway and status, for the gateways view: kept by a trigger,
-- so every writer of `sessions` (imports, the session feed, removals)
-- updates them in its own transaction, and reading them never counts rows.
-- Sessions without a gateway count under ''.
CREATE TABLE session_status_counts (
    gateway_id TEXT   COLLATE "C" NOT NULL,
    status     TEXT   NOT NULL,
    sessions   BIGINT NOT NULL,
    PRIMARY KEY (gateway_id, status)
);

INSERT INTO session_status_counts (gateway_id, status, sessions)
    SELECT COALESCE(gateway_id, ''), status, COUNT(*) FROM sessions GROUP BY 1, 2;

CREATE FUNCTION sessions_count_statuses() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE session_status_counts SET sessions = sessions - 1
            WHERE gateway_id = COALESCE(OLD.gateway_id, '') AND status = OLD.status;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO session_status_counts (gateway_id, status, sessions)
            VALUES (COALESCE(NEW.gateway_id, ''), NEW.status, 1)
            ON CONFLICT (gateway_id, status) DO UPDATE SET sessions = session_status_counts.sessions + 1;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER sessions_counted AFTER INSERT OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION sessions_count_statuses();
CREATE TRIGGER sessions_counted_on_update AFTER UPDATE OF gateway_id, status ON sessions
    FOR EACH ROW WHEN (OLD.gateway_id IS DISTINCT FROM NEW.gateway_id OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION sessions_count_statuses();
