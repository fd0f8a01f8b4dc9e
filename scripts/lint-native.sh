#!/usr/bin/env bash
# Lint for native/: clang-format (.clang-format) must leave every file as it is,
# and clang-tidy's bug-finding checks (.clang-tidy) must report nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files 'native/*.cc' 'native/*.h')
clang-format --dry-run -Werror $files
inc=(-Inative -I/usr/include/node "-I$(node -p "require('node-addon-api').include_dir")")
for f in $(git ls-files 'native/*.cc'); do
  extra=()
  case "$f" in native/thinpool/*) extra=(-D_FILE_OFFSET_BITS=64 -I/usr/include/fuse3) ;; esac
  clang-tidy --quiet "$f" -- -std=c++17 -x c++ -DNAPI_VERSION=8 -DNODE_ADDON_API_CPP_EXCEPTIONS -DSTRATA_HAVE_ISAL -DSTRATA_HAVE_ZSTD "${inc[@]}" "${extra[@]}"
done
