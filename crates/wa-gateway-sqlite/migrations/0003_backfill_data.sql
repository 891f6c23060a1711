-- Contacts and groups pulled by backfills.
--
-- Every backfill writes its rows under its own generation (the job id).
-- Readers see only the generation recorded for the session in
-- session_data_generations. A successful job points the session at its
-- generation and deletes the previous one in one transaction; a failed job
-- deletes its own rows. So what readers see changes only all at once, and
-- never because of a failure. Rows of a generation that is not current (a
-- crash mid-job) are swept at start-up.
CREATE TABLE session_data_generations (
    session_id   TEXT    NOT NULL PRIMARY KEY,
    generation   TEXT    NOT NULL,
    completed_at INTEGER NOT NULL
);

CREATE TABLE wa_contacts (
    session_id    TEXT NOT NULL,
    generation    TEXT NOT NULL,
    jid           TEXT NOT NULL,
    lid           TEXT,
    phone_number  TEXT,
    push_name     TEXT,
    full_name     TEXT,
    first_name    TEXT,
    business_name TEXT,
    PRIMARY KEY (session_id, generation, jid)
) WITHOUT ROWID;

CREATE TABLE wa_groups (
    session_id      TEXT    NOT NULL,
    generation      TEXT    NOT NULL,
    jid             TEXT    NOT NULL,
    name            TEXT,
    topic           TEXT,
    owner_jid       TEXT,
    created_at      INTEGER,
    is_announce     INTEGER NOT NULL,
    is_locked       INTEGER NOT NULL,
    addressing_mode TEXT,
    PRIMARY KEY (session_id, generation, jid)
) WITHOUT ROWID;

CREATE TABLE wa_group_participants (
    session_id     TEXT    NOT NULL,
    generation     TEXT    NOT NULL,
    group_jid      TEXT    NOT NULL,
    jid            TEXT    NOT NULL,
    lid            TEXT,
    phone_number   TEXT,
    is_admin       INTEGER NOT NULL,
    is_super_admin INTEGER NOT NULL,
    display_name   TEXT,
    PRIMARY KEY (session_id, generation, group_jid, jid)
) WITHOUT ROWID;
