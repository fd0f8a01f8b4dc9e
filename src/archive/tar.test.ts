/**
 * The tar codec at the byte level: what readTar() makes of each format's
 * headers and what the writer puts in them.
 */
import test from "ava";
import { archive, base256, entry, file, gnuLong, header, pax, paxRecord } from "../../test/fixtures/raw-tar.js";
import { chunks } from "../../test/helpers/tar.js";
import { StrataError } from "../errors.js";
import { encodeHeader, type TarHeader } from "./tar-header.js";
import { readTar } from "./tar-reader.js";
import { tarStream } from "./tar-writer.js";

async function read(tar: Buffer): Promise<Array<TarHeader & { body: string }>> {
  const out: Array<TarHeader & { body: string }> = [];
  for await (const e of readTar(chunks(tar, 333)))
    out.push({ ...e.header, body: (await e.readAll()).toString("latin1") });
  return out;
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

test("readTar() merges PAX records: path, linkpath, ids, size, times with nanoseconds, binary xattrs", async (t) => {
  const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x0a, 0xff, 0x00, 0x80, 0x3d, 0x0a]);
  const long = `dir/${"é".repeat(120)}`;
  const tar = archive(
    pax([
      paxRecord("path", long),
      paxRecord("uid", "3000000"),
      paxRecord("gid", "4000000"),
      paxRecord("mtime", "1700000000.123456789"),
      paxRecord("atime", "1700000001.5"),
      paxRecord("SCHILY.xattr.security.capability", cap),
      paxRecord("SCHILY.xattr.user.empty", ""),
    ]),
    file("short", "body"),
    pax([paxRecord("linkpath", `t/${"λ".repeat(100)}`)]),
    entry("2", "ln"),
  );
  const [f, l] = await read(tar);
  t.is(f!.name, long);
  t.is(f!.uid, 3_000_000);
  t.is(f!.gid, 4_000_000);
  t.deepEqual(f!.mtime, { sec: 1_700_000_000, nsec: 123_456_789 });
  t.deepEqual(f!.atime, { sec: 1_700_000_001, nsec: 500_000_000 });
  t.deepEqual(f!.xattrs.get("security.capability"), cap);
  t.deepEqual(f!.xattrs.get("user.empty"), Buffer.alloc(0));
  t.is(f!.body, "body");
  t.is(l!.type, "symlink");
  t.is(l!.linkname, `t/${"λ".repeat(100)}`);
  t.is(l!.xattrs.size, 0, "PAX records apply to the next entry only");
});

test("readTar() ignores global PAX headers", async (t) => {
  const tar = archive(pax([paxRecord("path", "global-name"), paxRecord("uid", "7")], "g"), file("a", "x"));
  const [a] = await read(tar);
  t.is(a!.name, "a");
  t.is(a!.uid, 0);
});

test("readTar() reads GNU long names and long link targets", async (t) => {
  const name = `${"n".repeat(300)}/file`;
  const target = `${"t".repeat(300)}`;
  const tar = archive(
    gnuLong("L", name),
    gnuLong("K", target),
    entry("2", "trunc", { magic: "gnu", linkname: "trunc" }),
  );
  const [e] = await read(tar);
  t.is(e!.name, name);
  t.is(e!.linkname, target);
});

test("readTar() reads base-256 numbers: ids, size and a negative mtime", async (t) => {
  const tar = archive(
    header({
      name: "b",
      magic: "gnu",
      uid: base256(3_000_000n, 8),
      gid: base256(2n ** 40n, 8),
      mtime: base256(-315_619_200n, 12),
      size: base256(5n, 12),
    }),
    Buffer.from("hello"),
    Buffer.alloc(507),
  );
  const [e] = await read(tar);
  t.is(e!.uid, 3_000_000);
  t.is(e!.gid, 2 ** 40);
  t.is(e!.size, 5);
  t.is(e!.body, "hello");
  t.deepEqual(e!.mtime, { sec: -315_619_200, nsec: 0 });
});

test("readTar() reads V7 headers: no magic, a directory as a name ending in /", async (t) => {
  const tar = archive(
    header({ name: "d/", type: "\0", magic: "v7", mode: 0o755 }),
    file("d/f", "v7", { type: "\0", magic: "v7" }),
  );
  const [d, f] = await read(tar);
  t.is(d!.type, "dir");
  t.is(f!.type, "file");
  t.is(f!.body, "v7");
  t.is(f!.uname, "");
});

test("readTar() joins the ustar prefix and name", async (t) => {
  const tar = archive(header({ name: "file.txt", prefix: "a/b/c" }));
  t.is((await read(tar))[0]!.name, "a/b/c/file.txt");
});

test("readTar() gives header-only types no body whatever size they claim", async (t) => {
  // Go's archive/tar (and so Docker) treat symlinks, dirs and devices as having no data.
  const tar = archive(header({ name: "l", type: "2", linkname: "x", size: 1024 }), file("after", "ok"));
  const [l, after] = await read(tar);
  t.is(l!.size, 0);
  t.is(after!.name, "after");
  t.is(after!.body, "ok");
});

test("readTar() rejects a negative size with ERR_TAR_FORMAT", async (t) => {
  const err = await t.throwsAsync(read(archive(header({ name: "a", size: base256(-1n, 12) }))));
  t.true(err instanceof StrataError);
  t.is((err as StrataError).code, "ERR_TAR_FORMAT");
});

test("the writer uses PAX for what ustar cannot hold and readTar() reads it back byte for byte", async (t) => {
  const cap = Buffer.from("0100000200040000000000000000000000000000", "hex");
  const entries = [
    h({
      name: `long/${"ü".repeat(200)}`,
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
  const back = await read(tar);
  t.is(back[0]!.name, entries[0]!.name);
  t.is(back[0]!.uid, 3_000_000);
  t.is(back[0]!.gid, 70_000_000);
  t.is(back[0]!.body, "abc");
  t.deepEqual(back[0]!.xattrs.get("security.capability"), cap);
  t.is(back[1]!.linkname, entries[1]!.linkname);
  t.deepEqual([back[2]!.devmajor, back[2]!.devminor], [259, 1_048_575]);
  t.deepEqual(back[3]!.mtime, { sec: -100, nsec: 0 });
});

test("the writer stores whole-second mtimes, a trailing / on directories, and ends with two zero blocks", async (t) => {
  const tar = await write([
    { header: h({ name: "d", type: "dir", mode: 0o755, mtime: { sec: 1_600_000_000, nsec: 999_999_999 } }) },
  ]);
  t.is(tar.length, 512 * 3, "one header, no PAX record for the nanoseconds, the end marker");
  t.is(tar.toString("latin1", 0, 2), "d/");
  t.true(tar.subarray(512).every((b) => b === 0));
  const [d] = await read(tar);
  t.deepEqual(d!.mtime, { sec: 1_600_000_000, nsec: 0 });
});

test("encodeHeader() counts PAX record lengths in bytes across the digit boundary", async (t) => {
  // Records whose length is near 100 bytes test the self-referential length prefix.
  for (let n = 80; n < 110; n++) {
    const name = `${"é".repeat(n)}`;
    const [e] = await read(Buffer.concat([encodeHeader(h({ name })), Buffer.alloc(1024)]));
    t.is(e!.name, name);
  }
});

test("readTar() reads negative PAX times with the fraction counting away from zero", async (t) => {
  const tar = archive(
    pax([paxRecord("mtime", "-1.5")]),
    file("a", ""),
    pax([paxRecord("mtime", "-0.25")]),
    file("b", ""),
  );
  const [a, b] = await read(tar);
  t.deepEqual(a!.mtime, { sec: -2, nsec: 500_000_000 });
  t.deepEqual(b!.mtime, { sec: -1, nsec: 750_000_000 });
});
