#!/usr/bin/env bash
# The README's first command: set up, then run strata's main job end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/src/cli/main.js demo "$@"
