-- Session history (contract §6): every change of a stored session, kept as
-- an event by statement triggers, so every writer (a host's feed, an
-- import, a removal) records it in its own transaction and none can forget
-- to. `written_by` is who wrote the row last: each writer's upsert names
-- itself ('feed' or 'import'); only the feed removes sessions.
--
-- Commit order. Event ids come from a sequence, which concurrent
-- transactions draw from in any order, so an id alone does not say when
-- its transaction committed. Every transaction that writes sessions moves
-- `sessions_revision.n` on and holds that row until it commits, so `n`
-- follows commit order across replicas; the trigger below records which
-- transaction took which `n`. An event's position is (that `n`, its id),
-- and a reader that sees a position sees every position before it.
ALTER TABLE sessions ADD COLUMN written_by TEXT NOT NULL DEFAULT 'import';

CREATE TABLE session_events (
    id              BIGSERIAL PRIMARY KEY,
    tx              xid8   NOT NULL DEFAULT pg_current_xact_id(),
    session_id      TEXT   COLLATE "C" NOT NULL,
    organization_id TEXT   COLLATE "C" NOT NULL,
    gateway_id      TEXT   COLLATE "C",
    kind            TEXT   NOT NULL
        CHECK (kind IN ('appeared', 'status_changed', 'moved', 'removed')),
    from_status     TEXT,
    to_status       TEXT,
    from_gateway_id TEXT,
    changed_at      BIGINT NOT NULL,
    recorded_at     BIGINT NOT NULL,
    source          TEXT   NOT NULL CHECK (source IN ('feed', 'import'))
);

CREATE INDEX session_events_by_session ON session_events (session_id, id);
CREATE INDEX session_events_by_org     ON session_events (organization_id, id);
CREATE INDEX session_events_by_gateway ON session_events (gateway_id, id);
CREATE INDEX session_events_by_status  ON session_events (to_status, id);
CREATE INDEX session_events_by_time    ON session_events (recorded_at);
CREATE INDEX session_events_by_tx      ON session_events (tx, id);

-- Which transaction took which revision, for transactions that wrote events.
CREATE TABLE session_event_commits (
    n            BIGINT NOT NULL PRIMARY KEY,
    tx           xid8   NOT NULL UNIQUE,
    committed_at BIGINT NOT NULL
);

-- How far pruning has gone: a watcher resuming before this position would
-- miss events, so it is told to list again (410 gone). `checked` is the
-- last revision whose sessions' counts were checked against the cap.
CREATE TABLE session_events_pruned (
    id              INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    commit_position BIGINT  NOT NULL,
    event_id        BIGINT  NOT NULL,
    checked         BIGINT  NOT NULL
);
INSERT INTO session_events_pruned (id, commit_position, event_id, checked) VALUES (1, 0, 0, 0);

CREATE OR REPLACE FUNCTION session_events_now() RETURNS BIGINT LANGUAGE sql VOLATILE AS
    $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT $$;

CREATE OR REPLACE FUNCTION sessions_events_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO session_events
        (session_id, organization_id, gateway_id, kind, to_status, changed_at, recorded_at, source)
        SELECT id, organization_id, gateway_id, 'appeared', status, updated_at, session_events_now(), written_by
        FROM added;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION sessions_events_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO session_events
        (session_id, organization_id, gateway_id, kind, from_status, to_status, from_gateway_id,
         changed_at, recorded_at, source)
        SELECT a.id, a.organization_id, a.gateway_id,
               CASE WHEN g.gateway_id IS DISTINCT FROM a.gateway_id THEN 'moved' ELSE 'status_changed' END,
               CASE WHEN g.status <> a.status THEN g.status END,
               CASE WHEN g.status <> a.status THEN a.status END,
               CASE WHEN g.gateway_id IS DISTINCT FROM a.gateway_id THEN g.gateway_id END,
               a.updated_at, session_events_now(), a.written_by
        FROM gone g JOIN added a ON a.id = g.id
        WHERE g.status <> a.status OR g.gateway_id IS DISTINCT FROM a.gateway_id;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION sessions_events_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO session_events
        (session_id, organization_id, gateway_id, kind, from_status, changed_at, recorded_at, source)
        SELECT id, organization_id, gateway_id, 'removed', status, session_events_now(), session_events_now(), 'feed'
        FROM gone;
    RETURN NULL;
END;
$$;

-- Runs with the revision row locked: the position stays taken until the commit.
CREATE OR REPLACE FUNCTION session_events_committing() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO session_event_commits (n, tx, committed_at)
        SELECT NEW.n, pg_current_xact_id(), session_events_now()
        WHERE EXISTS (SELECT 1 FROM session_events WHERE tx = pg_current_xact_id())
    ON CONFLICT (tx) DO NOTHING;
    RETURN NULL;
END;
$$;

CREATE TRIGGER sessions_events_on_insert AFTER INSERT ON sessions
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION sessions_events_added();
CREATE TRIGGER sessions_events_on_update AFTER UPDATE ON sessions
    REFERENCING OLD TABLE AS gone NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION sessions_events_changed();
CREATE TRIGGER sessions_events_on_delete AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION sessions_events_gone();
CREATE TRIGGER session_events_commit_order AFTER UPDATE ON sessions_revision
    FOR EACH ROW EXECUTE FUNCTION session_events_committing();
