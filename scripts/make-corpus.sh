#!/usr/bin/env bash
# Builds the benchmark corpus for `npm run bench:apply` under $STRATA_CORPUS
# (default /var/tmp/strata-corpus). Idempotent: each artifact is made once
# (FORCE=1 rebuilds). Never commit the corpus.
#
#   debian.tar(.gz)  a) Debian bookworm minbase rootfs (debootstrap; or the
#                       tar named by DEBIAN_TAR, e.g. the peer lab's base-rootfs.tar)
#   small.tar(.gz)   b) 60,000 small files (100 B .. 20 KiB) in ~2,600 directories
#   large.tar(.gz)   c) 4 x 256 MiB files of random bytes
#
# --quick builds a small corpus for trying the programs out, under
# /var/tmp/strata-corpus-quick: the same Debian layer (the peer lab's
# /tmp/peer-artifacts/base-rootfs.tar when present), 2,000 small files and
# 2 x 16 MiB.
set -euo pipefail
QUICK=0
[ "${1:-}" = --quick ] && QUICK=1
if [ "$QUICK" = 1 ]; then
  C=${STRATA_CORPUS:-/var/tmp/strata-corpus-quick}
  SMALL_FILES=2000 LARGE_COUNT=2 LARGE_MIB=16
  [ -z "${DEBIAN_TAR:-}" ] && [ -f /tmp/peer-artifacts/base-rootfs.tar ] && DEBIAN_TAR=/tmp/peer-artifacts/base-rootfs.tar
else
  C=${STRATA_CORPUS:-/var/tmp/strata-corpus}
  SMALL_FILES=60000 LARGE_COUNT=4 LARGE_MIB=256
fi
FORCE=${FORCE:-0}
mkdir -p "$C"
cd "$C"
need() { [ "$FORCE" = 1 ] || [ ! -e "$1" ]; }
apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends "$@" >/dev/null
}
tarit() { tar --numeric-owner --xattrs --xattrs-include='*' -C "$1" -cf "$2.tmp" . && mv "$2.tmp" "$2"; }
gz() { gzip -6 -n -c "$1" > "$1.gz.tmp" && mv "$1.gz.tmp" "$1.gz"; }

# ---- (a) Debian minbase
if need debian.tar && [ -n "${DEBIAN_TAR:-}" ]; then
  cp "$DEBIAN_TAR" debian.tar.tmp && mv debian.tar.tmp debian.tar
  rm -f debian.tar.gz
fi
if need debian.tar; then
  command -v debootstrap >/dev/null || apt_install debootstrap
  mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  rm -rf debian.tmp
  debootstrap --variant=minbase bookworm "$C/debian.tmp" "$mirror" > debootstrap.log 2>&1 ||
    { echo "make-corpus: debootstrap failed, see $C/debootstrap.log" >&2; exit 1; }
  rm -rf debian.tmp/var/cache/apt/archives/*.deb
  tarit debian.tmp debian.tar
  rm -rf debian.tmp debian.tar.gz
fi
need debian.tar.gz && gz debian.tar

# ---- (b) 60k small files
if need small.tar; then
  rm -rf small.tmp
  python3 - "$C/small.tmp" "$SMALL_FILES" <<'PY'
# Deterministic: 60,000 files of 100 B .. 20 KiB (skewed small), text-like
# (compressible) with 5% random bytes, in package-like nested directories;
# 60 files per package, so a smaller count gives fewer packages.
import os, random, sys
root = sys.argv[1]
packages = int(sys.argv[2]) // 60
r = random.Random(60000)
words = [''.join(r.choice('abcdefghijklmnopqrstuvwxyz_') for _ in range(r.randint(2, 10))) for _ in range(3000)]
text = ' '.join(r.choices(words + ['{', '}', '(', ')', ';', '\n', 'return', 'const', 'function'], k=4_000_000)).encode()
subdirs = ['lib', 'dist', 'dist/esm', 'src', 'src/utils', 'types', 'lib/internal/streams', 'test/fixtures/deep/er']
n = 0
for p in range(packages):
    pkg = os.path.join(root, 'node_modules', 'pkg%04d' % p)
    if p % 4 == 3:
        pkg = os.path.join(root, 'node_modules', 'pkg%04d' % (p - 1), 'node_modules', 'dep%04d' % p)
    dirs = r.sample(subdirs, 3)
    for j in range(60):
        d = pkg if j < 3 else os.path.join(pkg, dirs[j % 3])
        os.makedirs(d, exist_ok=True)
        size = 100 + int(20380 * r.random() ** 3)
        if r.random() < 0.05:
            data = r.randbytes(size)
        else:
            o = r.randrange(len(text) - size)
            data = text[o:o + size]
        with open(os.path.join(d, 'f%05d.js' % n), 'wb') as f:
            f.write(data)
        n += 1
PY
  tarit small.tmp small.tar
  rm -rf small.tmp small.tar.gz
fi
need small.tar.gz && gz small.tar

# ---- (c) 4 x 256 MiB (--quick: 2 x 16 MiB)
if need large.tar; then
  rm -rf large.tmp && mkdir large.tmp
  for i in $(seq 0 $((LARGE_COUNT - 1))); do head -c "${LARGE_MIB}M" /dev/urandom > "large.tmp/blob$i.bin"; done
  tarit large.tmp large.tar
  rm -rf large.tmp large.tar.gz
fi
need large.tar.gz && gz large.tar

for f in debian.tar small.tar large.tar; do
  printf '%-14s %6d entries %12d bytes (gzip %d)\n' "$f" "$(tar -tf "$f" | wc -l)" "$(stat -c %s "$f")" "$(stat -c %s "$f.gz")"
done
