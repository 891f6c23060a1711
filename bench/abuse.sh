#!/usr/bin/env bash
# Valid calls in the middle of 60 s of abuse (random paths, methods and
# credentials, oversized headers, junk bodies, slow clients, HTTP/2 stream
# floods) against the release server; prints one Markdown table row: valid
# p50/p99, failures (must be 0), RSS and /metrics size before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench abuse 2>/dev/null | grep -E '^\|'
