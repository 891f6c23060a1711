//! Backfill jobs (issue 4).
