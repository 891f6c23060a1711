#!/usr/bin/env bash
# Cluster-mode benchmarks (issue #9), each printing a Markdown table:
#   - backfill ingest into PostgreSQL vs COPY of the same rows (median of 3);
#   - first page of every filter combination vs unfiltered, 1,000,000
#     sessions, on SQLite and PostgreSQL.
# Needs Debian's postgresql package (the benches start a throwaway server).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench ingest --bench filters 2>/dev/null | grep -E '^\||sessions, first page'
