-- Status counts without a hot row. Until now every writer of `sessions`
-- updated the counter row of each (gateway, status) it touched, and held
-- it to its commit: a long import held the counters of its gateways, and
-- every feed write of those gateways, on every replica, waited for it.
-- Writers now only insert their net change into `session_status_deltas`
-- (no row is shared, so none waits); readers add the deltas to the
-- counters, and every replica's upkeep folds committed deltas into the
-- counters now and then.
--
-- 0005 counted the rows before it created its triggers, without a lock: a
-- write committed in between was never counted. Here `sessions` is locked
-- against writers first, and the counters are counted again.
LOCK TABLE sessions IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE session_status_deltas (
    id         BIGSERIAL PRIMARY KEY,
    gateway_id TEXT   COLLATE "C" NOT NULL,
    status     TEXT   NOT NULL,
    delta      BIGINT NOT NULL
);

CREATE OR REPLACE FUNCTION sessions_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO session_status_deltas (gateway_id, status, delta)
        SELECT COALESCE(gateway_id, ''), status, COUNT(*) FROM added GROUP BY 1, 2;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION sessions_count_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO session_status_deltas (gateway_id, status, delta)
        SELECT COALESCE(gateway_id, ''), status, -COUNT(*) FROM gone GROUP BY 1, 2;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION sessions_count_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO session_status_deltas (gateway_id, status, delta)
        SELECT gateway_id, status, SUM(delta) FROM (
            SELECT COALESCE(gateway_id, '') AS gateway_id, status, -1 AS delta FROM gone
            UNION ALL
            SELECT COALESCE(gateway_id, ''), status, 1 FROM added
        ) AS change GROUP BY 1, 2 HAVING SUM(delta) <> 0;
    RETURN NULL;
END;
$$;

DELETE FROM session_status_counts;
INSERT INTO session_status_counts (gateway_id, status, sessions)
    SELECT COALESCE(gateway_id, ''), status, COUNT(*) FROM sessions GROUP BY 1, 2;
