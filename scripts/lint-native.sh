#!/usr/bin/env bash
# Lint for native/: clang-format (.clang-format) must leave every file as it is,
# and clang-tidy's bug-finding checks (.clang-tidy) must report nothing. The
# translation units are checked in parallel, one per core; each one's report is
# printed whole so parallel reports do not interleave.
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files -z 'native/*.cc' 'native/*.h' | xargs -0 clang-format --dry-run -Werror

tidy_one() {
  local f=$1 out
  local flags=(-std=c++17 -x c++ -DNAPI_VERSION=8 -DNODE_ADDON_API_CPP_EXCEPTIONS -DSTRATA_HAVE_ISAL -DSTRATA_HAVE_ZSTD
    -Inative -I/usr/include/node "-I$NAPI_INCLUDE")
  case "$f" in native/thinpool/*) flags+=(-D_FILE_OFFSET_BITS=64 -I/usr/include/fuse3) ;; esac
  # "N warnings generated" counts what the header filter hid (node, napi, libc).
  if out=$(clang-tidy --quiet "$f" -- "${flags[@]}" 2>&1); then
    return 0
  fi
  grep -Ev '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' <<<"$out" >&2 || true
  echo "lint-native: clang-tidy found problems in $f" >&2
  return 1
}
export -f tidy_one
NAPI_INCLUDE=$(node -p "require('node-addon-api').include_dir")
export NAPI_INCLUDE
git ls-files -z 'native/*.cc' | xargs -0 -n1 -P "$(nproc)" bash -c 'tidy_one "$1"' tidy_one
