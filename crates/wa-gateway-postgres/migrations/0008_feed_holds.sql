-- A held snapshot is known to every replica by its number: the follower
-- publishes the hold it has (`hold_id`, `held_removals`) under its tenure,
-- any replica records an operator's accept of that very hold
-- (`accept_hold`), and the follower applies an accept only when it names
-- the hold it still has. A new follower starts with none.
ALTER TABLE feed_followers ADD COLUMN hold_id BIGINT;
ALTER TABLE feed_followers ADD COLUMN accept_hold BIGINT;
