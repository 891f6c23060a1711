-- Contacts and groups pulled by backfills, under generations (job ids), as
-- on SQLite: readers see only the generation recorded in
-- session_data_generations; a job's rows become visible all at once when it
-- publishes, and a failed job's rows are deleted.
CREATE TABLE session_data_generations (
    session_id   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    generation   TEXT COLLATE "C" NOT NULL,
    completed_at BIGINT NOT NULL
);

CREATE TABLE wa_contacts (
    session_id    TEXT COLLATE "C" NOT NULL,
    generation    TEXT COLLATE "C" NOT NULL,
    jid           TEXT COLLATE "C" NOT NULL,
    lid           TEXT,
    phone_number  TEXT,
    push_name     TEXT,
    full_name     TEXT,
    first_name    TEXT,
    business_name TEXT,
    PRIMARY KEY (session_id, generation, jid)
);

CREATE TABLE wa_groups (
    session_id        TEXT COLLATE "C" NOT NULL,
    generation        TEXT COLLATE "C" NOT NULL,
    jid               TEXT COLLATE "C" NOT NULL,
    name              TEXT,
    topic             TEXT,
    owner_jid         TEXT,
    created_at        BIGINT,
    is_announce       BOOLEAN NOT NULL,
    is_locked         BOOLEAN NOT NULL,
    addressing_mode   TEXT,
    participant_count BIGINT  NOT NULL,
    PRIMARY KEY (session_id, generation, jid)
);

CREATE TABLE wa_group_participants (
    session_id     TEXT COLLATE "C" NOT NULL,
    generation     TEXT COLLATE "C" NOT NULL,
    group_jid      TEXT COLLATE "C" NOT NULL,
    jid            TEXT COLLATE "C" NOT NULL,
    lid            TEXT,
    phone_number   TEXT,
    is_admin       BOOLEAN NOT NULL,
    is_super_admin BOOLEAN NOT NULL,
    display_name   TEXT,
    PRIMARY KEY (session_id, generation, group_jid, jid)
);
