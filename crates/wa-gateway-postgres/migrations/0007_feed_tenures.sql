-- Every lease of a gateway's feed gets a number no lease ever had: kept
-- while one replica renews it, new whenever another takes the gateway. A
-- follower's writes name the tenure they were begun under, and apply only
-- while it is still the gateway's current lease (checked and share-locked
-- in the write's own transaction, so a takeover waits for that commit).
CREATE SEQUENCE feed_tenures;
ALTER TABLE feed_followers ADD COLUMN tenure BIGINT NOT NULL DEFAULT nextval('feed_tenures');
