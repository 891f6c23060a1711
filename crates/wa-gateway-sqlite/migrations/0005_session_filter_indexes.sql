-- Every combination of the listing's filters gets an index whose columns are
-- the filters followed by `id`, so a page costs the same whatever the filter
-- (no scanning past rows that do not match).
CREATE INDEX sessions_by_org_status         ON sessions (organization_id, status, id);
CREATE INDEX sessions_by_org_gateway        ON sessions (organization_id, gateway_id, id);
CREATE INDEX sessions_by_status_gateway     ON sessions (status, gateway_id, id);
CREATE INDEX sessions_by_org_status_gateway ON sessions (organization_id, status, gateway_id, id);
