/**
 * A seeded fuzz test of the tar reader and applier (issue 19): a layer with
 * every entry kind, long names, PAX records and symlinks aimed outside is
 * damaged at random — bytes, entry types, number fields (octal and
 * base-256), cuts, inserted PAX records (paths that climb out, huge sizes,
 * bad lengths, forged xattrs), GNU long names — and applied with
 * `applyLayer` (both whiteout forms) and indexed with `tarMembers`. Every
 * case must end in success or one clear error (a StrataError with a code, a
 * one-line message), never a crash or an "aborted"; nothing may appear or
 * change outside the layer root (a sentinel directory beside it, reachable
 * through absolute and relative symlinks in the layer); and the process's
 * peak RSS stays under 600 MiB.
 *
 * STRATA_TAR_FUZZ_CASES sets the number of cases (default 150),
 * STRATA_TAR_FUZZ_SEED replays a run.
 */
import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import { tarMembers } from "../../src/archive/tar-members.js";
import { applyLayer } from "../../src/diff/apply.js";
import { StrataError } from "../../src/errors.js";
import { base256, gnuLong, pax, paxRecord } from "../fixtures/raw-tar.js";
import { prng } from "../helpers/gen-tree.js";
import { chunks, makeTar, type Spec } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";

const CASES = Number(process.env.STRATA_TAR_FUZZ_CASES ?? 150);
const SEED = Number(process.env.STRATA_TAR_FUZZ_SEED ?? Date.now() % 1_000_000);
const CEILING_MIB = 600;

/** A layer with every entry kind, symlinks towards `sentinel` (absolute and relative), and a long name. */
function layerSpecs(sentinel: string): Spec[] {
  return [
    { name: "etc/", mode: 0o755 },
    { name: "etc/hosts", content: "127.0.0.1 localhost\n" },
    { name: "etc/big", content: Buffer.alloc(70_000, 0x61) },
    { name: "etc/link", type: "link", linkname: "etc/hosts" },
    { name: "etc/sym", type: "symlink", linkname: "hosts" },
    { name: "abs", type: "symlink", linkname: sentinel },
    { name: "up", type: "symlink", linkname: "etc/.." },
    { name: "up/via-up", content: "at the root" },
    { name: "dev/", mode: 0o755 },
    { name: "dev/null", type: "char", devmajor: 1, devminor: 3, mode: 0o666 },
    { name: "dev/fifo", type: "fifo" },
    { name: `deep/${"d/".repeat(40)}${"n".repeat(150)}`, content: "long" },
    { name: "x/", xattrs: { "user.note": "kept", "trusted.overlay.opaque": "y" } },
    { name: "x/.wh..wh..opq" },
    { name: ".wh.gone" },
    { name: "run/", mode: 0o1777, uid: 1000, gid: 1000 },
  ];
}

/** Offsets of the header blocks (their checksum is right). */
function headerBlocks(tar: Buffer): number[] {
  const out: number[] = [];
  for (let at = 0; at + 512 <= tar.length; at += 512) {
    let sum = 8 * 32;
    for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) sum += tar[at + i]!;
    if (sum !== 8 * 32 && Number.parseInt(tar.toString("latin1", at + 148, at + 155), 8) === sum) out.push(at);
  }
  return out;
}

function fixChecksum(b: Buffer, off: number): void {
  b.fill(0x20, off + 148, off + 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[off + i]!;
  b.write(`${sum.toString(8).padStart(6, "0")}\0 `, off + 148, 8, "latin1");
}

/** PAX records an attacker might send before an entry. */
function hostilePax(rand: () => number, sentinel: string): Buffer {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const records: Buffer[] = [];
  for (let n = 1 + Math.floor(rand() * 3); n > 0; n--) {
    records.push(
      pick([
        () =>
          paxRecord(
            "path",
            pick([
              "../escape",
              "/abs/olute",
              "a/../../b",
              "ok/\0nul",
              "x".repeat(5000),
              "etc",
              "abs/planted",
              "up/../../x",
            ]),
          ),
        () => paxRecord("linkpath", pick([sentinel, "../../..", "etc/hosts", "missing", ""])),
        () => paxRecord("size", pick(["9007199254740993", "-1", "12abc", "0", "70000", "99999999999"])),
        () => paxRecord(pick(["uid", "gid"]), pick(["4294967296", "-5", "x", "65534"])),
        () => paxRecord(pick(["mtime", "atime"]), pick(["-1.5", "1e9", "99999999999999999999", "1.", ""])),
        () => paxRecord(`SCHILY.xattr.${pick(["trusted.overlay.redirect", "user.a", "security.selinux"])}`, "/etc"),
        () => Buffer.from(pick(["5 a=\n", "999 path=x\n", "x path=y\n", "12 nolf=abc", "0 =\n"])),
        () => paxRecord("comment", Buffer.alloc(Math.floor(rand() * 200_000), 0x7a)),
      ])(),
    );
  }
  return pax(records, rand() < 0.1 ? "g" : "x");
}

/** One to four random changes to `layer`. */
function damage(layer: Buffer, rand: () => number, sentinel: string): Buffer {
  let b = Buffer.from(layer);
  for (let k = 1 + Math.floor(rand() * 4); k > 0; k--) {
    const headers = headerBlocks(b);
    const at = headers[Math.floor(rand() * headers.length)] ?? 0;
    const r = rand();
    if (r < 0.25) {
      for (let n = 1 + Math.floor(rand() * 8); n > 0; n--) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
    } else if (r < 0.4) {
      b.write("0123456789xgLKSAV\0"[Math.floor(rand() * 18)]!, at + 156, 1, "latin1");
      fixChecksum(b, at);
    } else if (r < 0.6) {
      const [off, len] = [
        [100, 8],
        [108, 8],
        [116, 8],
        [124, 12],
        [136, 12],
        [329, 8],
        [337, 8],
      ][Math.floor(rand() * 7)]!;
      const v = rand();
      if (v < 0.4)
        b.write(
          Math.floor(rand() * 2 ** 33)
            .toString(8)
            .padStart(len - 1, "0")
            .slice(-(len - 1)),
          at + off!,
          "latin1",
        );
      else if (v < 0.7) base256(BigInt(Math.floor((rand() - 0.3) * 2 ** 40)), len!).copy(b, at + off!);
      else b.write("9z -\x80"[Math.floor(rand() * 5)]!.repeat(len! - 1), at + off!, "latin1");
      fixChecksum(b, at);
    } else if (r < 0.8) {
      b = Buffer.concat([b.subarray(0, at), hostilePax(rand, sentinel), b.subarray(at)]);
    } else if (r < 0.9) {
      const name = rand() < 0.5 ? `${"../".repeat(3)}long` : `${"seg/".repeat(200)}${"n".repeat(300)}`;
      b = Buffer.concat([b.subarray(0, at), gnuLong(rand() < 0.7 ? "L" : "K", name), b.subarray(at)]);
    } else {
      return b.subarray(0, Math.floor(rand() * b.length));
    }
  }
  return b;
}

/** Names and contents under `dir`, for the sentinel check. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const n of (await readdir(dir)).sort()) {
    const st = await stat(join(dir, n));
    out.push(`${n} ${st.mode} ${st.isFile() ? await readFile(join(dir, n), "utf8") : ""}`);
  }
  return out;
}

function assertClear(t: ExecutionContext, err: unknown, what: string): string {
  t.true(err instanceof StrataError, `${what}: not a StrataError: ${String(err)}`);
  const e = err as StrataError;
  t.regex(e.code, /^(ERR_[A-Z0-9_]+|E[A-Z0-9]+)$/, what);
  t.false(e.message.includes("\n"), `${what}: one line: ${JSON.stringify(e.message.slice(0, 300))}`);
  t.false(/aborted/.test(e.message), `${what}: the first error, not an abort`);
  return e.code;
}

test(`damaged layers (seeded) end in success or one clear error, touch nothing outside the root, in bounded memory`, async (t) => {
  t.log(`seed ${SEED} (STRATA_TAR_FUZZ_SEED to replay), ${CASES} cases`);
  const base = await tempDir(t, "strata-fuzz-");
  const sentinel = join(base, "sentinel");
  await mkdir(sentinel);
  await writeFile(join(sentinel, "keep"), "outside the layer");
  const before = await snapshot(sentinel);
  const layer = await makeTar(layerSpecs(sentinel));
  const rand = prng(SEED);
  const outcomes = new Map<string, number>();
  const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  const archive = join(base, "archive.tar");
  for (let i = 0; i < CASES; i++) {
    const tar = damage(layer, rand, sentinel);
    const root = join(base, "root");
    await mkdir(root);
    const what = `#${i}`;
    try {
      await applyLayer(root, chunks(tar, [512, 999, 65_536][i % 3]), {
        whiteouts: i % 2 ? "overlay" : "aufs",
        threads: i % 4 === 0 ? 1 : 4,
      });
      count("applied");
    } catch (err) {
      const code = assertClear(t, err, `${what} apply`);
      if (!code.startsWith("ERR_")) t.log(`${what}: ${(err as Error).message.slice(0, 120)}`);
      count(code);
    }
    await writeFile(archive, tar);
    try {
      await tarMembers(archive);
    } catch (err) {
      assertClear(t, err, `${what} tarMembers`);
    }
    t.deepEqual(await snapshot(sentinel), before, `${what}: the sentinel beside the root is untouched`);
    t.deepEqual(
      (await readdir(base)).sort(),
      ["archive.tar", "root", "sentinel"],
      `${what}: nothing new beside the root`,
    );
    await rm(root, { recursive: true, force: true });
  }
  t.log([...outcomes].map(([k, n]) => `${k} ${n}`).join(", "));
  t.true(
    (outcomes.get("applied") ?? 0) > 0 && (outcomes.get("applied") ?? 0) < CASES,
    "the damage both breaks and spares",
  );
  const hwm = Number(/^VmHWM:\s+(\d+) kB$/m.exec(await readFile("/proc/self/status", "utf8"))![1]) / 1024;
  t.log(`peak RSS of the test process ${hwm.toFixed(0)} MiB`);
  t.true(hwm < CEILING_MIB, `peak RSS ${hwm.toFixed(0)} MiB`);
});
