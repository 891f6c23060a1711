-- Session history (contract §6): every change of a stored session, kept as
-- an event by triggers, so every writer (a host's feed, an import, a
-- removal) records it in its own transaction and none can forget to.
--
-- `written_by` is who wrote the row last: each writer's upsert names
-- itself ('feed' or 'import'), and the triggers copy it into the event.
-- Only the feed removes sessions.
--
-- One writer at a time holds the database, so event ids follow commit
-- order: an event's position is its id. AUTOINCREMENT keeps ids from
-- being reused when the newest events are pruned.
ALTER TABLE sessions ADD COLUMN written_by TEXT NOT NULL DEFAULT 'import';

CREATE TABLE session_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id      TEXT    NOT NULL,
    organization_id TEXT    NOT NULL,
    gateway_id      TEXT,
    kind            TEXT    NOT NULL
        CHECK (kind IN ('appeared', 'status_changed', 'moved', 'removed')),
    from_status     TEXT,
    to_status       TEXT,
    from_gateway_id TEXT,
    changed_at      INTEGER NOT NULL,
    recorded_at     INTEGER NOT NULL,
    source          TEXT    NOT NULL CHECK (source IN ('feed', 'import'))
);

-- Newest first by id, under each filter; `recorded_at` bounds `since` and
-- pruning by age.
CREATE INDEX session_events_by_session ON session_events (session_id, id);
CREATE INDEX session_events_by_org     ON session_events (organization_id, id);
CREATE INDEX session_events_by_gateway ON session_events (gateway_id, id);
CREATE INDEX session_events_by_status  ON session_events (to_status, id);
CREATE INDEX session_events_by_time    ON session_events (recorded_at);

-- How far pruning has gone: a watcher resuming before this position would
-- miss events, so it is told to list again (410 gone). `checked` is the
-- last event whose session's count was checked against the cap.
CREATE TABLE session_events_pruned (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    commit_position INTEGER NOT NULL,
    event_id        INTEGER NOT NULL,
    checked         INTEGER NOT NULL
);
INSERT INTO session_events_pruned (id, commit_position, event_id, checked) VALUES (1, 0, 0, 0);

CREATE TRIGGER sessions_event_on_insert AFTER INSERT ON sessions
BEGIN
    INSERT INTO session_events
        (session_id, organization_id, gateway_id, kind, to_status, changed_at, recorded_at, source)
    VALUES (NEW.id, NEW.organization_id, NEW.gateway_id, 'appeared', NEW.status, NEW.updated_at,
            CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), NEW.written_by);
END;

CREATE TRIGGER sessions_event_on_update AFTER UPDATE OF gateway_id, status ON sessions
    WHEN OLD.gateway_id IS NOT NEW.gateway_id OR OLD.status IS NOT NEW.status
BEGIN
    INSERT INTO session_events
        (session_id, organization_id, gateway_id, kind, from_status, to_status, from_gateway_id,
         changed_at, recorded_at, source)
    VALUES (NEW.id, NEW.organization_id, NEW.gateway_id,
            CASE WHEN OLD.gateway_id IS NOT NEW.gateway_id THEN 'moved' ELSE 'status_changed' END,
            CASE WHEN OLD.status IS NOT NEW.status THEN OLD.status END,
            CASE WHEN OLD.status IS NOT NEW.status THEN NEW.status END,
            CASE WHEN OLD.gateway_id IS NOT NEW.gateway_id THEN OLD.gateway_id END,
            NEW.updated_at, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), NEW.written_by);
END;

CREATE TRIGGER sessions_event_on_delete AFTER DELETE ON sessions
BEGIN
    INSERT INTO session_events
        (session_id, organization_id, gateway_id, kind, from_status, changed_at, recorded_at, source)
    VALUES (OLD.id, OLD.organization_id, OLD.gateway_id, 'removed', OLD.status,
            CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
            CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), 'feed');
END;
