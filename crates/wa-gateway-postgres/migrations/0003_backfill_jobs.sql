-- Backfill jobs shared by every replica (cluster mode).
--
-- * At most one queued or running job per session, enforced here: a start is
--   one INSERT … ON CONFLICT DO NOTHING against the partial unique index.
-- * The replica running a job holds a lease (runner, lease_expires_at) and
--   renews it; a reaper on every replica fails jobs whose lease expired
--   ('interrupted'). Publishing locks the job row and checks the lease in the
--   same transaction, so a replica that lost its lease never publishes.
-- * Every change notifies channel wa_gateway_jobs with 'STATUS SESSION_ID',
--   which each replica fans out to its local watchers, runners and (for
--   queued jobs) idle workers.
CREATE TABLE backfill_jobs (
    id               TEXT COLLATE "C" NOT NULL PRIMARY KEY,  -- a ULID, also the data generation
    session_id       TEXT COLLATE "C" NOT NULL,
    organization_id  TEXT   NOT NULL,
    status           TEXT   NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    started_at       BIGINT NOT NULL,
    finished_at      BIGINT,
    contacts         BIGINT NOT NULL DEFAULT 0,
    groups           BIGINT NOT NULL DEFAULT 0,
    group_members    BIGINT NOT NULL DEFAULT 0,
    error            TEXT,
    stop_requested   BOOLEAN NOT NULL DEFAULT false,
    runner           TEXT,
    lease_expires_at TIMESTAMPTZ,
    -- Whether the job's staged rows are gone (failed jobs) or published.
    swept            BOOLEAN NOT NULL DEFAULT false
);

CREATE UNIQUE INDEX backfill_jobs_one_active ON backfill_jobs (session_id)
    WHERE status IN ('queued', 'running');
CREATE INDEX backfill_jobs_by_session ON backfill_jobs (session_id, id);
CREATE INDEX backfill_jobs_queued ON backfill_jobs (id) WHERE status = 'queued';
CREATE INDEX backfill_jobs_leases ON backfill_jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX backfill_jobs_unswept ON backfill_jobs (id) WHERE NOT swept AND status = 'failed';

CREATE FUNCTION backfill_jobs_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('wa_gateway_jobs', NEW.status || ' ' || NEW.session_id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER backfill_jobs_changed AFTER INSERT OR UPDATE ON backfill_jobs
    FOR EACH ROW EXECUTE FUNCTION backfill_jobs_notify();
