#!/usr/bin/env bash
# The README's second command (and what .ci/run calls): set up, install the
# peers the tests compare with, then run the linter and the whole test suite.
# The last line is "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
started=$(bash scripts/test-peers.sh)
stop_started() {
  # Stop only the dockerd this run started, by pid.
  if [ -n "$started" ] && kill -0 "$started" 2>/dev/null; then
    kill "$started"
    for _ in $(seq 1 100); do kill -0 "$started" 2>/dev/null || break; sleep 0.1; done
  fi
}
trap stop_started EXIT
node scripts/run-tests.mjs "$@"
