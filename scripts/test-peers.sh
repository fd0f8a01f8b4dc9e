#!/usr/bin/env bash
# Test set-up for the peer comparisons: installs the peers (dockerd, skopeo,
# umoci, registry, ...) with ../shared/peers/install.sh and builds the base
# images with make-base-image.sh (debootstrap; cached in /tmp/peer-artifacts).
# Prints the pid of a dockerd it had to start, so the caller can stop it.
# Idempotent; quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${STRATA_PEERS:-$(cd .. && pwd)/shared/peers}
if [ ! -f "$PEERS/install.sh" ]; then
  echo "test-peers: $PEERS not found; peer tests will skip" >&2
  exit 0
fi
. "$PEERS/env.sh"
dockerd_vars overlay2
before=""
pid_alive "$DD_PIDFILE" "$DD_DATA" && before=$(cat "$DD_PIDFILE")
bash "$PEERS/install.sh" > /tmp/strata-peers-install.log 2>&1 || {
  echo "test-peers: install.sh failed (see /tmp/strata-peers-install.log); peer tests will skip" >&2
  exit 0
}
if ! bash "$PEERS/make-base-image.sh" > /tmp/strata-peers-images.log 2>&1; then
  echo "test-peers: make-base-image.sh failed (see /tmp/strata-peers-images.log); peer tests will skip" >&2
fi
if [ -z "$before" ] && pid_alive "$DD_PIDFILE" "$DD_DATA"; then cat "$DD_PIDFILE"; fi
