import { execFile } from "node:child_process";
import { promisify } from "node:util";
import test from "ava";
import type { Readable } from "node:stream";
import { readTar } from "../helpers/tar-reader.js";
import { manifest } from "../helpers/tree.js";
import { applySpecs, openOverlay } from "./helpers.js";
import type { Spec } from "../helpers/tar.js";

const sh = promisify(execFile);

const base: Spec[] = [
  { name: "etc/", mode: 0o755 },
  { name: "etc/hosts", content: "127.0.0.1 localhost\n" },
  { name: "etc/passwd", content: "root:x:0:0::/root:/bin/sh\n" },
  { name: "etc/shadow", content: "root:*:1::::::\n", mode: 0o640 },
  { name: "etc/touched", content: "same bytes\n" },
  { name: "usr/", mode: 0o755 },
  { name: "usr/share/", mode: 0o755 },
  { name: "usr/share/doc/", mode: 0o755 },
  { name: "usr/share/doc/a", content: "a" },
  { name: "usr/share/doc/b", content: "b" },
  { name: "var/", mode: 0o755 },
  { name: "var/cache/", mode: 0o755 },
  { name: "var/cache/x/", mode: 0o755 },
  { name: "var/cache/x/1", content: "1" },
  { name: "var/cache/y", content: "y" },
  { name: "opt/", mode: 0o755 },
  { name: "opt/movable/", mode: 0o755 },
  { name: "opt/movable/inside", content: "moved" },
  { name: "srv/", mode: 0o755 },
  { name: "srv/file-to-dir", content: "f" },
  { name: "srv/dir-to-file/", mode: 0o755 },
  { name: "srv/dir-to-file/c", content: "c" },
  { name: "bin/", mode: 0o755 },
  { name: "bin/ping", content: "ping" },
];

/** The same change script as the Docker interop test: every kind of change a container makes. */
export const CHANGE_SCRIPT = `
set -e
printf 'changed\\n' > etc/hosts
chmod 600 etc/shadow
chown 1000:1000 etc/passwd
touch -d '2021-02-03 04:05:06' etc/touched
rm usr/share/doc/a
rm -rf var/cache/x
rm -rf var/cache && mkdir var/cache && echo fresh > var/cache/new
mv opt/movable opt/moved
rm srv/file-to-dir && mkdir srv/file-to-dir && echo in > srv/file-to-dir/in
rm -rf srv/dir-to-file && echo now-a-file > srv/dir-to-file
mkdir -p new/deep/tree && head -c 1048576 /dev/zero > new/deep/tree/big
echo h > new/h1 && ln new/h1 new/h2
ln -s ../etc/hosts new/link
mkfifo new/fifo
mknod new/null c 1 3
setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 bin/ping
`;

async function tarNames(s: Readable): Promise<string[]> {
  const out: string[] = [];
  for await (const e of readTar(s)) {
    out.push(`${e.header.type} ${e.header.name}`);
    for await (const _ of e.body()) void _;
  }
  return out.sort();
}

test("native and naive diff give the same changes, equivalent tars and the same size", async (t) => {
  const { d, mounts } = await openOverlay(t);
  t.true(d.capabilities.nativeDiff, "this kernel supports native diff");
  await d.create("base", "");
  await applySpecs(d, mounts, "base", "", base);
  await d.createReadWrite("ctr", "base");
  const p = await mounts.acquire("ctr");
  try {
    await sh("sh", ["-c", CHANGE_SCRIPT], { cwd: p });
  } finally {
    await mounts.release("ctr");
  }
  const changes = await mounts.changes("ctr", "base");
  t.deepEqual(changes, await mounts.naive.changes("ctr", "base"), "the upper-dir-pruned walk equals the full walk");
  const nativeNames = await tarNames(await mounts.diff("ctr", "base"));
  const naiveNames = await tarNames(await mounts.naive.diff("ctr", "base"));
  t.log(`native tar: ${nativeNames.length} entries, naive tar: ${naiveNames.length} entries`);
  t.true(nativeNames.includes("file var/cache/.wh..wh..opq"), "native tar marks the recreated dir opaque");
  t.true(naiveNames.includes("file var/cache/.wh.x"), "naive tar deletes the old children one by one");

  for (const [name, tar] of [
    ["native", await mounts.diff("ctr", "base")],
    ["naive", await mounts.naive.diff("ctr", "base")],
  ] as const) {
    await d.create(name, "base");
    await mounts.applyDiff(name, "base", tar);
    t.deepEqual(
      (await mounts.changes(name, "base")).map((c) => `${c.kind} ${c.path}`),
      changes.map((c) => `${c.kind} ${c.path}`),
      `${name} tar applied onto the base gives the container's changes`,
    );
  }
  const opts = { mtime: "seconds", xattrs: "capability" } as const;
  const trees: string[][] = [];
  for (const id of ["ctr", "native", "naive"]) {
    const root = await mounts.acquire(id);
    try {
      trees.push(await manifest(root, opts));
    } finally {
      await mounts.release(id);
    }
  }
  t.deepEqual(trees[1], trees[0], "native tar reproduces the container tree");
  t.deepEqual(trees[2], trees[0], "naive tar reproduces the container tree");
  t.is(await mounts.diffSize("ctr", "base"), await mounts.naive.diffSize("ctr", "base"));
  t.deepEqual(
    changes.map((c) => `${c.kind} ${c.path}`),
    [
      "C /bin",
      "C /bin/ping",
      "C /etc",
      "C /etc/hosts",
      "C /etc/passwd",
      "C /etc/shadow",
      "C /etc/touched",
      "A /new",
      "A /new/deep",
      "A /new/deep/tree",
      "A /new/deep/tree/big",
      "A /new/fifo",
      "A /new/h1",
      "A /new/h2",
      "A /new/link",
      "A /new/null",
      "C /opt",
      "A /opt/moved",
      "A /opt/moved/inside",
      "D /opt/movable",
      "C /srv",
      "C /srv/dir-to-file",
      "C /srv/file-to-dir",
      "A /srv/file-to-dir/in",
      "C /usr",
      "C /usr/share",
      "C /usr/share/doc",
      "D /usr/share/doc/a",
      "C /var",
      "C /var/cache",
      "A /var/cache/new",
      "D /var/cache/x",
      "D /var/cache/y",
    ],
  );
  t.is(await mounts.active(), 0);
});

test("diff of a layer against a parent that is not its direct parent falls back to the naive engine", async (t) => {
  const { d, mounts } = await openOverlay(t);
  await d.create("a", "");
  await applySpecs(d, mounts, "a", "", [{ name: "one", content: "1" }]);
  await d.create("b", "a");
  await applySpecs(d, mounts, "b", "a", [{ name: "two", content: "2" }]);
  await d.create("c", "b");
  await applySpecs(d, mounts, "c", "b", [{ name: "three", content: "3" }, { name: ".wh.one" }]);
  t.deepEqual(await tarNames(await mounts.diff("c", "b")), ["file .wh.one", "file three"]);
  t.deepEqual(await tarNames(await mounts.diff("c", "a")), ["file .wh.one", "file three", "file two"]);
  t.is(await mounts.diffSize("c", "a"), 2);
  t.is(await mounts.diffSize("c", "b"), 1);
  t.deepEqual(await tarNames(await mounts.diff("c", "")), ["file three", "file two"]);
  t.is(await mounts.active(), 0);
});
