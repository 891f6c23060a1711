-- Sessions by gateway and status, for the gateways view: kept by statement
-- triggers over their transition tables, so every writer of `sessions`
-- (imports, the session feed, removals) updates them in its own transaction
-- with one grouped change per statement, and reading them never counts rows.
-- Sessions without a gateway count under ''.
CREATE TABLE session_status_counts (
    gateway_id TEXT   COLLATE "C" NOT NULL,
    status     TEXT   NOT NULL,
    sessions   BIGINT NOT NULL,
    PRIMARY KEY (gateway_id, status)
);

INSERT INTO session_status_counts (gateway_id, status, sessions)
    SELECT COALESCE(gateway_id, ''), status, COUNT(*) FROM sessions GROUP BY 1, 2;

CREATE FUNCTION sessions_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO session_status_counts AS c (gateway_id, status, sessions)
        SELECT COALESCE(gateway_id, ''), status, COUNT(*) FROM added GROUP BY 1, 2
        ORDER BY 1, 2
        ON CONFLICT (gateway_id, status) DO UPDATE SET sessions = c.sessions + excluded.sessions;
    RETURN NULL;
END;
$$;

CREATE FUNCTION sessions_count_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE session_status_counts AS c SET sessions = c.sessions - g.n
        FROM (SELECT COALESCE(gateway_id, '') AS gateway_id, status, COUNT(*) AS n FROM gone GROUP BY 1, 2) AS g
        WHERE c.gateway_id = g.gateway_id AND c.status = g.status;
    RETURN NULL;
END;
$$;

CREATE FUNCTION sessions_count_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE session_status_counts AS c SET sessions = c.sessions - g.n
        FROM (SELECT COALESCE(gateway_id, '') AS gateway_id, status, COUNT(*) AS n FROM gone GROUP BY 1, 2) AS g
        WHERE c.gateway_id = g.gateway_id AND c.status = g.status;
    INSERT INTO session_status_counts AS c (gateway_id, status, sessions)
        SELECT COALESCE(gateway_id, ''), status, COUNT(*) FROM added GROUP BY 1, 2
        ORDER BY 1, 2
        ON CONFLICT (gateway_id, status) DO UPDATE SET sessions = c.sessions + excluded.sessions;
    RETURN NULL;
END;
$$;

CREATE TRIGGER sessions_counted_on_insert AFTER INSERT ON sessions
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION sessions_count_added();
CREATE TRIGGER sessions_counted_on_delete AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION sessions_count_gone();
CREATE TRIGGER sessions_counted_on_update AFTER UPDATE ON sessions
    REFERENCING OLD TABLE AS gone NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION sessions_count_changed();
