#!/usr/bin/env bash
# The README's second command (and what .ci/run calls): set up, then run the
# linter and the whole test suite. The last line is "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node scripts/run-tests.mjs "$@"
