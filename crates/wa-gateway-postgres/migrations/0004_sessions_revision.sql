-- The revision of `sessions`: every transaction that writes sessions adds
-- one to `n` (store/postgres/sessions.rs, `write`), so a listing read after
-- the revision was R is still current while the revision is R. The update
-- locks the row until commit, so revisions follow commit order across
-- replicas. `epoch` is random per database, so a revision never repeats
-- across databases.
CREATE TABLE sessions_revision (
    id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    epoch TEXT    NOT NULL,
    n     BIGINT  NOT NULL
);

INSERT INTO sessions_revision (id, epoch, n)
    VALUES (1, substr(md5(random()::text || clock_timestamp()::text), 1, 16), 0);
