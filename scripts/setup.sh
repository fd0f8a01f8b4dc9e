#!/usr/bin/env bash
# Everything strata needs on a fresh Debian 12 machine (root): system
# packages, npm dependencies, the native addon and the TypeScript build.
# Idempotent, and quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(pkg-config clang-format clang-tidy libisal-dev libzstd-dev zstd libfuse3-dev fuse3 thin-provisioning-tools xfsprogs e2fsprogs attr xz-utils bzip2 fio docker-registry skopeo umoci busybox-static)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci only when the lockfile changed since the last install.
stamp=node_modules/.strata-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: npm ci" >&2
  npm ci --no-fund --no-audit --loglevel=error
  echo "$want" > "$stamp"
fi

npm run --silent build:native >/dev/null
npm run --silent build:ts
