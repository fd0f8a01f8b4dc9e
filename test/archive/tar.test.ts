/**
 * The tar codec at the byte level: what the one tar decoder
 * (`native/archive/tar_header.cc`) makes of each format's headers, seen
 * where product code sees it — the tree `applyLayer` makes and the members
 * `tarMembers` lists — and what the writer puts in headers.
 */
import { lstat, readFile, readlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import { archive, base256, entry, file, gnuLong, header, pax, paxRecord } from "../fixtures/raw-tar.js";
import { chunks } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { applyLayer } from "../../src/diff/apply.js";
import { StrataError } from "../../src/errors.js";
import { lgetxattr } from "../../src/native.js";
import { encodeHeader, type TarHeader } from "../../src/archive/tar-header.js";
import { tarMembers } from "../../src/archive/tar-members.js";
import { tarStream } from "../../src/archive/tar-writer.js";

/** Applies `tar` (fed in odd-sized chunks) to a fresh directory and returns it. */
async function applied(t: ExecutionContext, tar: Buffer): Promise<string> {
  const dir = await tempDir(t);
  await applyLayer(dir, chunks(tar, 333));
  return dir;
}

/** The members the index finds in `tar`, written to a file. */
async function members(t: ExecutionContext, tar: Buffer) {
  const f = join(await tempDir(t), "a.tar");
  await writeFile(f, tar);
  return tarMembers(f);
}

async function times(path: string): Promise<{ mtime: bigint; atime: bigint }> {
  const st = await lstat(path, { bigint: true });
  return { mtime: st.mtimeNs, atime: st.atimeNs };
}

function h(over: Partial<TarHeader>): TarHeader {
  return {
    name: "f",
    type: "file",
    mode: 0o644,
    uid: 0,
    gid: 0,
    uname: "",
    gname: "",
    size: 0,
    mtime: { sec: 1_600_000_000, nsec: 0 },
    linkname: "",
    devmajor: 0,
    devminor: 0,
    xattrs: new Map(),
    ...over,
  };
}

async function write(entries: Array<{ header: TarHeader; body?: Buffer }>): Promise<Buffer> {
  const parts: Buffer[] = [];
  async function* src() {
    yield* entries;
  }
  for await (const c of tarStream(src())) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

test("PAX records are merged: path, linkpath, ids, times with nanoseconds, binary xattrs", async (t) => {
  const cap = Buffer.from("0100000200200000000000000000000000000000", "hex");
  const bin = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x0a, 0xff, 0x00, 0x80, 0x3d, 0x0a]);
  const long = `dir/${"é".repeat(120)}`;
  const tar = archive(
    pax([
      paxRecord("path", long),
      paxRecord("uid", "3000000"),
      paxRecord("gid", "4000000"),
      paxRecord("mtime", "1700000000.123456789"),
      paxRecord("atime", "1700000001.5"),
      paxRecord("SCHILY.xattr.security.capability", cap),
      paxRecord("SCHILY.xattr.user.bin", bin),
      paxRecord("SCHILY.xattr.user.empty", ""),
    ]),
    file("short", "body"),
    pax([paxRecord("linkpath", `t/${"λ".repeat(100)}`)]),
    entry("2", "ln"),
  );
  const dir = await applied(t, tar);
  const f = join(dir, long);
  t.deepEqual(await times(f), { mtime: 1_700_000_000_123_456_789n, atime: 1_700_000_001_500_000_000n });
  t.is(await readFile(f, "utf8"), "body");
  const st = await lstat(f);
  t.is(st.uid, 3_000_000);
  t.is(st.gid, 4_000_000);
  t.deepEqual(await lgetxattr(f, "security.capability"), cap);
  t.deepEqual(await lgetxattr(f, "user.bin"), bin, "NUL, high bytes, = and newline survive");
  t.deepEqual(await lgetxattr(f, "user.empty"), Buffer.alloc(0));
  t.is(await readlink(join(dir, "ln")), `t/${"λ".repeat(100)}`);
  t.is((await lstat(join(dir, "ln"))).uid, 0, "PAX records apply to the next entry only");
  t.deepEqual(
    (await members(t, tar)).map((m) => [m.name, m.size]),
    [[long, 4]],
  );
});

test("global PAX headers are ignored", async (t) => {
  const tar = archive(pax([paxRecord("path", "global-name"), paxRecord("uid", "7")], "g"), file("a", "x"));
  const dir = await applied(t, tar);
  t.is((await lstat(join(dir, "a"))).uid, 0);
  t.deepEqual(
    (await members(t, tar)).map((m) => m.name),
    ["a"],
  );
});

test("GNU long names and long link targets are read", async (t) => {
  const name = `${"n".repeat(200)}/${"m".repeat(200)}`;
  const target = `${"t".repeat(200)}`;
  const tar = archive(
    gnuLong("L", name),
    gnuLong("K", target),
    entry("2", "trunc", { magic: "gnu", linkname: "trunc" }),
    gnuLong("L", `${name}-file`),
    file("cut", "long", { magic: "gnu" }),
  );
  const dir = await applied(t, tar);
  t.is(await readlink(join(dir, name)), target);
  t.is(await readFile(join(dir, `${name}-file`), "utf8"), "long");
  t.deepEqual(
    (await members(t, tar)).map((m) => m.name),
    [`${name}-file`],
  );
});

test("base-256 numbers are read: ids, size and a negative mtime", async (t) => {
  const tar = archive(
    header({
      name: "b",
      magic: "gnu",
      uid: base256(3_000_000n, 8),
      gid: base256(70_000_000n, 8),
      mtime: base256(-315_619_200n, 12),
      size: base256(5n, 12),
    }),
    Buffer.from("hello"),
    Buffer.alloc(507),
  );
  const dir = await applied(t, tar);
  const st = await lstat(join(dir, "b"));
  t.is(st.uid, 3_000_000);
  t.is(st.gid, 70_000_000);
  t.is(await readFile(join(dir, "b"), "utf8"), "hello");
  t.is((await times(join(dir, "b"))).mtime, -315_619_200_000_000_000n);
  const [m] = await members(t, tar);
  t.deepEqual([m!.offset, m!.size], [512, 5]);
});

test("V7 headers are read: no magic, a directory as a name ending in /", async (t) => {
  const tar = archive(
    header({ name: "d/", type: "\0", magic: "v7", mode: 0o711 }),
    file("d/f", "v7", { type: "\0", magic: "v7" }),
  );
  const dir = await applied(t, tar);
  const d = await lstat(join(dir, "d"));
  t.true(d.isDirectory());
  t.is(d.mode & 0o777, 0o711);
  t.is(await readFile(join(dir, "d/f"), "utf8"), "v7");
});

test("the ustar prefix and name are joined", async (t) => {
  const tar = archive(file("file.txt", "p", { prefix: "a/b/c" }));
  t.is(await readFile(join(await applied(t, tar), "a/b/c/file.txt"), "utf8"), "p");
  t.deepEqual(
    (await members(t, tar)).map((m) => m.name),
    ["a/b/c/file.txt"],
  );
});

test("a GNU header with a ustar prefix (Go before 1.8) keeps its prefix; GNU atime/ctime stay times", async (t) => {
  // Go's archive/tar before 1.8 put long names' directories in the ustar prefix field even in
  // GNU-format headers, where GNU keeps atime and ctime. Go's reader (and so Docker) takes that
  // field as a prefix when it does not read as two times.
  const go17 = file("file.txt", "old image", { magic: "gnu", prefix: "usr/share/doc/some-package" });
  const times = header({ name: "plain", magic: "gnu", size: 0 });
  times.write("14506154021\0", 345, 12, "latin1"); // GNU tar's atime, octal
  times.write("14506154022\0", 357, 12, "latin1"); // and ctime
  times.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of times) sum += b;
  times.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  const tar = archive(go17, times);
  const dir = await applied(t, tar);
  t.is(await readFile(join(dir, "usr/share/doc/some-package/file.txt"), "utf8"), "old image");
  t.true((await lstat(join(dir, "plain"))).isFile(), "atime/ctime are not taken for a prefix");
  t.deepEqual(
    (await members(t, tar)).map((m) => m.name),
    ["usr/share/doc/some-package/file.txt", "plain"],
  );
});

test("header-only types have no body whatever size they claim", async (t) => {
  // Go's archive/tar (and so Docker) treat symlinks, dirs and devices as having no data.
  const tar = archive(header({ name: "l", type: "2", linkname: "x", size: 1024 }), file("after", "ok"));
  const dir = await applied(t, tar);
  t.is(await readlink(join(dir, "l")), "x");
  t.is(await readFile(join(dir, "after"), "utf8"), "ok");
  const [m] = await members(t, tar);
  t.deepEqual([m!.name, m!.offset], ["after", 1024]);
});

test("a negative size is refused with ERR_TAR_FORMAT, by the applier and the index", async (t) => {
  const tar = archive(header({ name: "a", size: base256(-1n, 12) }));
  const err = await t.throwsAsync(applied(t, tar));
  t.true(err instanceof StrataError);
  t.is((err as StrataError).code, "ERR_TAR_FORMAT");
  const err2 = await t.throwsAsync(members(t, tar));
  t.is((err2 as StrataError).code, "ERR_TAR_FORMAT");
});

test("a name with a newline is escaped in the error: the message stays one line", async (t) => {
  const tar = archive(file("evil\nname", "x".repeat(2000)));
  const err = await t.throwsAsync(applied(t, tar.subarray(0, 1500)));
  t.is((err as StrataError).code, "ERR_TAR_FORMAT");
  t.is((err as StrataError).message, 'Cannot read the tar archive: unexpected end of archive in body of "evil\\nname"');
});

test("the index refuses an archive cut inside a member with ERR_ARCHIVE_TRUNCATED", async (t) => {
  const tar = archive(file("a", "x".repeat(2000)));
  const err = await t.throwsAsync(members(t, tar.subarray(0, 1500)));
  t.is((err as StrataError).code, "ERR_ARCHIVE_TRUNCATED");
});

test("the writer uses PAX for what ustar cannot hold and the decoder reads it back", async (t) => {
  const cap = Buffer.from("0100000200040000000000000000000000000000", "hex");
  const entries = [
    h({
      name: `long/${"ü".repeat(100)}`,
      size: 3,
      uid: 3_000_000,
      gid: 70_000_000,
      xattrs: new Map([["security.capability", cap]]),
    }),
    h({ name: "sym", type: "symlink", linkname: `/${"x".repeat(150)}` }),
    h({ name: "dev", type: "char", devmajor: 259, devminor: 1_048_575 }),
    h({ name: "old", mtime: { sec: -100, nsec: 0 } }),
  ];
  const tar = await write(entries.map((header) => ({ header, body: Buffer.from("abc") })));
  const dir = await applied(t, tar);
  const f = join(dir, entries[0]!.name);
  t.is(await readFile(f, "utf8"), "abc");
  t.deepEqual([(await lstat(f)).uid, (await lstat(f)).gid], [3_000_000, 70_000_000]);
  t.deepEqual(await lgetxattr(f, "security.capability"), cap);
  t.is(await readlink(join(dir, "sym")), entries[1]!.linkname);
  const dev = await lstat(join(dir, "dev"));
  t.true(dev.isCharacterDevice());
  const minor = 1_048_575; // glibc's makedev: minor's low byte, major << 8, the rest of minor << 12
  t.is(dev.rdev, 259 * 256 + (minor % 256) + (minor - (minor % 256)) * 4096);
  t.is((await times(join(dir, "old"))).mtime, -100_000_000_000n);
});

test("the writer stores whole-second mtimes, a trailing / on directories, and ends with two zero blocks", async (t) => {
  const tar = await write([
    { header: h({ name: "d", type: "dir", mode: 0o755, mtime: { sec: 1_600_000_000, nsec: 999_999_999 } }) },
  ]);
  t.is(tar.length, 512 * 3, "one header, no PAX record for the nanoseconds, the end marker");
  t.is(tar.toString("latin1", 0, 2), "d/");
  t.true(tar.subarray(512).every((b) => b === 0));
  t.is((await times(join(await applied(t, tar), "d"))).mtime, 1_600_000_000_000_000_000n);
});

test("encodeHeader() counts PAX record lengths in bytes across the digit boundary", async (t) => {
  // Records whose length is near 100 bytes test the self-referential length prefix.
  const tar = Buffer.concat([
    ...Array.from({ length: 30 }, (_, i) => encodeHeader(h({ name: `${"é".repeat(80 + i)}` }))),
    Buffer.alloc(1024),
  ]);
  t.deepEqual(
    (await members(t, tar)).map((m) => m.name),
    Array.from({ length: 30 }, (_, i) => `${"é".repeat(80 + i)}`),
  );
});

test("negative PAX times are read with the fraction counting away from zero", async (t) => {
  const tar = archive(
    pax([paxRecord("mtime", "-1.5")]),
    file("a", ""),
    pax([paxRecord("mtime", "-0.25")]),
    file("b", ""),
  );
  const dir = await applied(t, tar);
  t.is((await times(join(dir, "a"))).mtime, -1_500_000_000n);
  t.is((await times(join(dir, "b"))).mtime, -250_000_000n);
});
