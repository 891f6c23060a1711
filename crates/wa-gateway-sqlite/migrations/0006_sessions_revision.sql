-- The revision of `sessions`: every transaction that writes sessions adds
-- one to `n` (store/sqlite/sessions.rs, `write`), so a listing read after
-- the revision was R is still current while the revision is R. `epoch` is
-- random per database, so a revision never repeats across databases.
CREATE TABLE sessions_revision (
    id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    epoch TEXT    NOT NULL,
    n     INTEGER NOT NULL
);

INSERT INTO sessions_revision (id, epoch, n) VALUES (1, lower(hex(randomblob(8))), 0);
