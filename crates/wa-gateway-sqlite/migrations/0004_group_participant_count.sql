-- Groups carry their member count, so a page of groups never has to load
-- (or count) members: they are paged separately.
ALTER TABLE wa_groups ADD COLUMN participant_count INTEGER NOT NULL DEFAULT 0;

UPDATE wa_groups SET participant_count = (
    SELECT count(*) FROM wa_group_participants p
    WHERE p.session_id = wa_groups.session_id
      AND p.generation = wa_groups.generation
      AND p.group_jid = wa_groups.jid
);
