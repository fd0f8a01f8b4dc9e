/** applyLayer: streamed large bodies, many directories and writes, failures reported in archive order. */
import { createHash, randomBytes } from "node:crypto";
import { lstat, readdir, readFile, readlink, stat } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { chunks, makeTar, type Spec } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { SystemError } from "../../src/errors.js";
import { lgetxattr, llistxattr } from "../../src/native.js";
import { applyLayer } from "../../src/diff/apply.js";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

test("a multi-MiB file is streamed through apply intact, with its metadata and the diffID", async (t) => {
  const dir = await tempDir(t);
  const big = randomBytes(13 * (1 << 20) + 123); // above the 1 MiB inline limit, several 4 MiB writes
  const tar = await makeTar([
    { name: "data/", mode: 0o750, mtime: 1_500_000_000 },
    { name: "data/big.bin", content: big, mode: 0o4755, uid: 1234, gid: 4321, mtime: 1_600_000_123 },
    { name: "data/after.txt", content: "after" },
  ]);
  const res = await applyLayer(dir, chunks(tar, 300_000), { digest: true });
  t.is(res.size, big.length + 5);
  t.is(res.digest, `sha256:${sha(tar)}`);
  const got = await readFile(join(dir, "data/big.bin"));
  t.is(sha(got), sha(big));
  const st = await stat(join(dir, "data/big.bin"));
  t.is(st.mode & 0o7777, 0o4755); // chmod after chown keeps setuid
  t.is(st.uid, 1234);
  t.is(st.gid, 4321);
  t.is(Math.floor(st.mtimeMs / 1000), 1_600_000_123);
  t.is(await readFile(join(dir, "data/after.txt"), "utf8"), "after");
  const dst = await stat(join(dir, "data"));
  t.is(Math.floor(dst.mtimeMs / 1000), 1_500_000_000); // directory times restored at the end
  t.is(dst.mode & 0o7777, 0o750);
});

test("a layer spanning many directories and batches lands completely and in order", async (t) => {
  const dir = await tempDir(t);
  const specs: Spec[] = [];
  for (let d = 0; d < 300; d++) {
    specs.push({ name: `d${d}/`, mode: 0o700 + (d % 8), mtime: 1_400_000_000 + d });
    for (let f = 0; f < 10; f++) specs.push({ name: `d${d}/sub/f${f}`, content: `${d}:${f}`.repeat(f + 1) });
    specs.push({ name: `d${d}/link`, type: "symlink", linkname: "sub/f0" });
    specs.push({ name: `d${d}/hard`, type: "link", linkname: `d${d}/sub/f1` });
  }
  // Later entries replace earlier ones: a file over a directory, then a directory over a file.
  specs.push({ name: "d7", content: "now a file" });
  specs.push({ name: "d8/sub/f3/", mode: 0o711 });
  specs.push({ name: "d9/.wh.sub" });
  const res = await applyLayer(dir, chunks(await makeTar(specs)));
  t.deepEqual(res.warnings, []);
  t.is((await readdir(dir)).length, 300);
  t.is(await readFile(join(dir, "d7"), "utf8"), "now a file");
  t.true((await lstat(join(dir, "d8/sub/f3"))).isDirectory());
  await t.throwsAsync(lstat(join(dir, "d9/sub")), { code: "ENOENT" });
  for (const d of [0, 123, 299]) {
    t.is(await readFile(join(dir, `d${d}/sub/f9`), "utf8"), `${d}:9`.repeat(10));
    t.is(await readlink(join(dir, `d${d}/link`)), "sub/f0");
    const [a, b] = await Promise.all([stat(join(dir, `d${d}/hard`)), stat(join(dir, `d${d}/sub/f1`))]);
    t.is(a.ino, b.ino);
    const st = await stat(join(dir, `d${d}`));
    t.is(st.mode & 0o777, 0o700 + (d % 8));
    t.is(Math.floor(st.mtimeMs / 1000), 1_400_000_000 + d);
  }
});

test("a failing entry deep in a batch stops the apply there: earlier entries exist, later ones do not", async (t) => {
  const dir = await tempDir(t);
  const specs: Spec[] = [];
  for (let i = 0; i < 1500; i++) specs.push({ name: `a/f${i}`, content: String(i) });
  specs.push({ name: "a/bad", type: "link", linkname: "missing/target" });
  for (let i = 0; i < 50; i++) specs.push({ name: `b/f${i}`, content: String(i) });
  await t.throwsAsync(applyLayer(dir, chunks(await makeTar(specs))), { code: "ERR_LINK_TARGET" });
  t.is(await readFile(join(dir, "a/f1499"), "utf8"), "1499");
  await t.throwsAsync(lstat(join(dir, "b")), { code: "ENOENT" });
});

for (const threads of [1, 4]) {
  test(`a failing system call deep in a batch is reported as a SystemError with its errno (threads=${threads})`, async (t) => {
    const dir = await tempDir(t);
    const specs: Spec[] = [];
    for (let i = 0; i < 1200; i++) specs.push({ name: `a/f${i}`, content: String(i) });
    specs.push({ name: `a/${"x".repeat(300)}`, content: "name too long" }); // ENAMETOOLONG from openat
    for (let i = 0; i < 50; i++) specs.push({ name: `b${i}/${"y".repeat(300)}`, content: "also too long" });
    specs.push({ name: "c/after", content: "later" });
    const err = await t.throwsAsync(applyLayer(dir, chunks(await makeTar(specs)), { threads }));
    t.true(err instanceof SystemError, String(err));
    t.is((err as SystemError).code, "ENAMETOOLONG");
    t.is((err as SystemError).path, `a/${"x".repeat(300)}`); // the first failure in archive order
    t.is(await readFile(join(dir, "a/f1199"), "utf8"), "1199");
    // One by one nothing after the failing entry is made; in parallel, independent
    // entries already running may be (the layer is discarded after a failed apply).
    if (threads === 1) await t.throwsAsync(lstat(join(dir, "c")), { code: "ENOENT" });
  });
}

test("a refused entry reports ERR_BREAKOUT after the entries before it were applied", async (t) => {
  const dir = await tempDir(t);
  const specs: Spec[] = [];
  for (let i = 0; i < 100; i++) specs.push({ name: `x/f${i}`, content: String(i) });
  specs.push({ name: "x/evil", type: "symlink", linkname: "../../../etc/passwd" });
  specs.push({ name: "y/after", content: "no" });
  await t.throwsAsync(applyLayer(dir, chunks(await makeTar(specs))), { code: "ERR_BREAKOUT" });
  t.is(await readFile(join(dir, "x/f99"), "utf8"), "99");
  await t.throwsAsync(lstat(join(dir, "x/evil")), { code: "ENOENT" });
  await t.throwsAsync(lstat(join(dir, "y")), { code: "ENOENT" });
});

test("xattrs the kernel reads as its own metadata are dropped with a warning; security.capability stays", async (t) => {
  const dir = await tempDir(t);
  const cap = Buffer.from("0100000200200000000000000000000000000000", "hex");
  const xattrs = {
    "trusted.overlay.opaque": "y",
    "user.overlay.redirect": "/etc",
    "security.selinux": "system_u:object_r:etc_t:s0",
    "security.capability": cap,
    "trusted.other": "kept",
  };
  const specs: Spec[] = [{ name: "d/", xattrs }];
  for (let i = 0; i < 150; i++) specs.push({ name: `d/f${i}`, content: "x", xattrs });
  const emitted: Error[] = [];
  const onWarning = (w: Error) => {
    if ((w as { code?: string }).code === "STRATA_XATTR_DROPPED") emitted.push(w);
  };
  process.on("warning", onWarning);
  try {
    const res = await applyLayer(dir, chunks(await makeTar(specs)));
    await new Promise((r) => setImmediate(r)); // process warnings are emitted on the next tick
    t.is(res.warnings.length, 101, "100 kept, then a count");
    t.regex(res.warnings[0]!, /^dropped xattr trusted\.overlay\.opaque on "d\/"/);
    t.is(res.warnings[100], "... and 353 more warnings");
    t.is(emitted.length, 1, "one process warning per apply");
  } finally {
    process.off("warning", onWarning);
  }
  for (const p of ["d", "d/f0", "d/f149"]) {
    t.deepEqual((await llistxattr(join(dir, p))).sort(), ["security.capability", "trusted.other"], p);
    t.deepEqual(await lgetxattr(join(dir, p), "security.capability"), cap);
  }
});
