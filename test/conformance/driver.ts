/**
 * The driver conformance suite: one set of cases, run unchanged against
 * every driver. A driver's test file calls `driverConformance(name, factory)`
 * once per option set. Every case gets a fresh root; on failure the tree of
 * the layer involved is printed.
 */
import { chmod, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import avaTest, { type ExecutionContext } from "ava";
import { applyLayer } from "../../src/diff/index.js";
import type { Driver, DriverFactory } from "../../src/graphdriver/driver.js";
import { countedMounts, mountSpecs } from "../helpers/mounts.js";
import { chunks, makeTar, type Spec } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { manifest } from "../helpers/tree.js";

export interface ConformanceOptions {
  /** Extra driver options for this run. */
  options?: Record<string, string>;
  /** Directory to create roots under (a filesystem the driver supports). */
  base?: string;
  /** Depth of the deep-chain case; 128 unless a driver documents a lower limit. */
  deepChain?: number;
  /** Run the cases one at a time (drivers whose every case builds a pool and a filesystem). */
  serial?: boolean;
}

async function openDriver(t: ExecutionContext, factory: DriverFactory, o: ConformanceOptions): Promise<Driver> {
  const root = await tempDir(t, "strata-conf-", o.base);
  const driver = await factory({ root, options: o.options ?? {} });
  t.teardown(() => driver.cleanup());
  return driver;
}

async function dump(t: ExecutionContext, driver: Driver, id: string): Promise<void> {
  try {
    const p = await driver.get(id);
    t.log(`tree of ${id}:\n${(await manifest(p)).join("\n")}`);
    await driver.put(id);
  } catch (err) {
    t.log(`cannot dump ${id}: ${(err as Error).message}`);
  }
}

const baseFiles: Spec[] = [
  { name: "etc/", mode: 0o755 },
  { name: "etc/hosts", content: "127.0.0.1 localhost\n", mode: 0o644 },
  { name: "etc/shadow", content: "root:*:1:0:99999:7:::\n", mode: 0o640, gid: 42 },
  { name: "bin/", mode: 0o755 },
  { name: "bin/sh", content: "#!fake shell\n", mode: 0o755 },
  { name: "bin/ash", type: "link", linkname: "bin/sh" },
  { name: "bin/dash", type: "symlink", linkname: "sh" },
  { name: "usr/", mode: 0o755 },
  { name: "usr/lib/", mode: 0o755 },
  { name: "usr/lib/big", content: Buffer.alloc(300_000, 7) },
  { name: "lib", type: "symlink", linkname: "usr/lib" },
  { name: "run/", mode: 0o1777 },
  { name: "run/fifo", type: "fifo", mode: 0o600 },
  { name: "dev/", mode: 0o755 },
  { name: "dev/null", type: "char", mode: 0o666, devmajor: 1, devminor: 3 },
  { name: "home/", mode: 0o755 },
  { name: "home/user/", mode: 0o700, uid: 1000, gid: 1000 },
  { name: "home/user/.profile", content: "export A=1\n", uid: 1000, gid: 1000, xattrs: { "user.note": "kept" } },
  {
    name: "sbin/ping",
    content: "ping",
    mode: 0o4755,
    xattrs: { "security.capability": Buffer.from("0100000200200000000000000000000000000000", "hex") },
  },
];

/** Registers the conformance cases for one driver (and option set). */
export function driverConformance(name: string, factory: DriverFactory, o: ConformanceOptions = {}): void {
  const test = o.serial ? avaTest.serial : avaTest;
  const title = (s: string) =>
    `${name}${o.options && Object.keys(o.options).length ? ` ${JSON.stringify(o.options)}` : ""}: ${s}`;

  test(title("create of an empty layer gives an empty root dir 0755 owned by 0:0"), async (t) => {
    const d = await openDriver(t, factory, o);
    await d.create("empty", "");
    t.true(await d.exists("empty"));
    const mounts = await countedMounts(t, d);
    const p = await mounts.acquire("empty");
    try {
      const st = await stat(p);
      t.true(st.isDirectory());
      t.is(st.mode & 0o7777, 0o755);
      t.is(st.uid, 0);
      t.is(st.gid, 0);
      t.deepEqual(await readdir(p), []);
    } finally {
      await mounts.release("empty");
    }
    t.is(await mounts.active(), 0);
  });

  test(title("create refuses an existing id and a missing parent"), async (t) => {
    const d = await openDriver(t, factory, o);
    await d.create("a", "");
    const dup = await t.throwsAsync(d.create("a", ""));
    t.is((dup as { code?: string }).code, "ERR_LAYER_EXISTS");
    const orphan = await t.throwsAsync(d.create("b", "missing"));
    t.is((orphan as { code?: string }).code, "ERR_LAYER_NOT_FOUND");
    t.false(await d.exists("b"));
  });

  test(title("every method refuses ids that are not one safe path component with ERR_INVALID_ID"), async (t) => {
    const d = await openDriver(t, factory, o);
    // `.tmp-` names are the drivers' own temporary entries, swept at start.
    for (const bad of ["", "..", "a..b", "a/b", ".hidden", "-x", "x.tmp-1.2-ab"]) {
      await t.throwsAsync(d.create(bad, ""), { code: "ERR_INVALID_ID" }, `create("${bad}")`);
      await t.throwsAsync(d.get(bad), { code: "ERR_INVALID_ID" }, `get("${bad}")`);
      await t.throwsAsync(d.exists(bad), { code: "ERR_INVALID_ID" }, `exists("${bad}")`);
    }
    await d.create("ok.id_1-x", "");
    t.true(await d.exists("ok.id_1-x"));
    t.deepEqual(await d.list(), ["ok.id_1-x"]);
  });

  test(title("base layer applied from a tar holds every entry type with metadata"), async (t) => {
    const d = await openDriver(t, factory, o);
    const mounts = await countedMounts(t, d);
    await d.create("base", "");
    const size = await mounts.applyDiff("base", "", Readable.from(chunks(await makeTar(baseFiles))));
    t.is(
      size,
      baseFiles.reduce((s, f) => s + (f.content ? Buffer.from(f.content).length : 0), 0),
    );
    const p = await mounts.acquire("base");
    try {
      t.is(await readFile(join(p, "etc/hosts"), "utf8"), "127.0.0.1 localhost\n");
      const shadow = await stat(join(p, "etc/shadow"));
      t.is(shadow.mode & 0o7777, 0o640);
      t.is(shadow.gid, 42);
      t.is((await stat(join(p, "bin/ash"))).ino, (await stat(join(p, "bin/sh"))).ino);
      t.is((await stat(join(p, "run"))).mode & 0o7777, 0o1777);
      t.is((await stat(join(p, "sbin/ping"))).mode & 0o7777, 0o4755);
      t.true((await stat(join(p, "run/fifo"))).isFIFO());
      t.is((await stat(join(p, "dev/null"))).rdev, (1 << 8) | 3);
      t.is((await stat(join(p, "etc/hosts"))).mtimeMs, 1_600_000_000_000);
      t.is((await stat(join(p, "home/user"))).uid, 1000);
    } catch (err) {
      await dump(t, d, "base");
      throw err;
    } finally {
      await mounts.release("base");
    }
  });

  test(title("a snapshot sees its parent and its writes stay its own"), async (t) => {
    const d = await openDriver(t, factory, o);
    const mounts = await countedMounts(t, d);
    await d.create("base", "");
    await mounts.applyDiff("base", "", Readable.from(chunks(await makeTar(baseFiles))));
    await d.createReadWrite("snap", "base");
    const s = await mounts.acquire("snap");
    try {
      t.is(await readFile(join(s, "etc/hosts"), "utf8"), "127.0.0.1 localhost\n");
      await writeFile(join(s, "etc/hosts"), "changed\n");
      await rm(join(s, "bin/dash"));
      await mkdir(join(s, "new"));
    } finally {
      await mounts.release("snap");
    }
    const b = await mounts.acquire("base");
    try {
      t.is(await readFile(join(b, "etc/hosts"), "utf8"), "127.0.0.1 localhost\n");
      t.truthy(await stat(join(b, "bin/sh")));
      await t.throwsAsync(stat(join(b, "new")));
    } finally {
      await mounts.release("base");
    }
    const s2 = await mounts.acquire("snap");
    try {
      t.is(await readFile(join(s2, "etc/hosts"), "utf8"), "changed\n", "writes survive put/get");
    } finally {
      await mounts.release("snap");
    }
  });

  test(title("changes lists A/C/D with Docker's rules"), async (t) => {
    const d = await openDriver(t, factory, o);
    const mounts = await countedMounts(t, d);
    await d.create("base", "");
    await mounts.applyDiff("base", "", Readable.from(chunks(await makeTar(baseFiles))));
    await d.createReadWrite("c", "base");
    const p = await mounts.acquire("c");
    try {
      await writeFile(join(p, "etc/hosts"), "changed\n");
      await chmod(join(p, "etc/shadow"), 0o600);
      await rm(join(p, "usr/lib"), { recursive: true });
      await mkdir(join(p, "opt/app"), { recursive: true });
      await writeFile(join(p, "opt/app/x"), "x");
      await symlink("/etc/hosts", join(p, "home/user/link"));
    } finally {
      await mounts.release("c");
    }
    const got = (await mounts.changes("c", "base")).map((c) => `${c.kind} ${c.path}`);
    t.deepEqual(got, [
      "C /etc",
      "C /etc/hosts",
      "C /etc/shadow",
      "C /home",
      "C /home/user",
      "A /home/user/link",
      "A /opt",
      "A /opt/app",
      "A /opt/app/x",
      "C /usr",
      "D /usr/lib",
    ]);
    // hosts (new content) + shadow (chmod only, still counted) + the symlink + opt/app/x
    t.is(
      await mounts.diffSize("c", "base"),
      "changed\n".length + "root:*:1:0:99999:7:::\n".length + "/etc/hosts".length + 1,
    );
    const all = await mounts.changes("base", "");
    t.true(all.every((c) => c.kind === "A"));
    t.is(all.length, 20);
    t.is(await mounts.active(), 0);
  });

  test(title("diff then applyDiff on the same parent reproduces the layer"), async (t) => {
    const d = await openDriver(t, factory, o);
    const mounts = await countedMounts(t, d);
    await d.create("base", "");
    await mounts.applyDiff("base", "", Readable.from(chunks(await makeTar(baseFiles))));
    await d.createReadWrite("c", "base");
    const p = await mounts.acquire("c");
    try {
      await writeFile(join(p, "etc/hosts"), "changed\n");
      await rm(join(p, "usr/lib"), { recursive: true });
      await mkdir(join(p, "opt/deep/er"), { recursive: true });
      await writeFile(join(p, "opt/deep/er/f"), Buffer.alloc(70_000, 1));
      await rm(join(p, "bin/dash"));
      await symlink("dash-new", join(p, "bin/dash"));
    } finally {
      await mounts.release("c");
    }
    const tar = await mounts.diff("c", "base");
    await d.create("c2", "base");
    await mounts.applyDiff("c2", "base", tar);
    const a = await mounts.acquire("c");
    const b = await mounts.acquire("c2");
    try {
      const opts = { mtime: "seconds", xattrs: "capability" } as const;
      t.deepEqual(await manifest(b, opts), await manifest(a, opts));
    } finally {
      await mounts.release("c");
      await mounts.release("c2");
    }
    t.is(await mounts.active(), 0);
  });

  test(title("full diff of a base layer round-trips into a fresh layer"), async (t) => {
    const d = await openDriver(t, factory, o);
    const mounts = await countedMounts(t, d);
    await d.create("base", "");
    await mounts.applyDiff("base", "", Readable.from(chunks(await makeTar(baseFiles))));
    const tar = await mounts.diff("base", "");
    await d.create("copy", "");
    await mounts.applyDiff("copy", "", tar);
    const a = await mounts.acquire("base");
    const b = await mounts.acquire("copy");
    try {
      // Layer tars carry only security.capability among xattrs, as Docker's do.
      t.deepEqual(await manifest(b), await manifest(a, { xattrs: "capability" }));
    } finally {
      await mounts.release("base");
      await mounts.release("copy");
    }
  });

  test(title(`a ${o.deepChain ?? 128}-deep chain is readable and matches a flat oracle`), async (t) => {
    const depth = o.deepChain ?? 128;
    const d = await openDriver(t, factory, o);
    const mounts = await countedMounts(t, d);
    const flat = await tempDir(t, "strata-flat-");
    let parent = "";
    for (let i = 0; i < depth; i++) {
      const id = `l${i}`;
      const specs: Spec[] = [
        { name: `f${i}`, content: `layer ${i}` },
        { name: "top", content: `${i}` },
      ];
      if (i > 0) specs.push({ name: `.wh.f${i - 1}` });
      await d.create(id, parent);
      const tar = await makeTar(specs);
      await mounts.applyDiff(id, parent, Readable.from(chunks(tar)));
      await applyLayer(flat, chunks(tar));
      parent = id;
    }
    const top = await mounts.acquire(parent);
    try {
      t.is(await readFile(join(top, "top"), "utf8"), String(depth - 1));
      t.deepEqual(await manifest(top), await manifest(flat));
    } finally {
      await mounts.release(parent);
    }
  });

  test(
    title("mountSpec describes mounts a client makes itself: writes stay in the layer, parents show, read-only holds"),
    async (t) => {
      const d = await openDriver(t, factory, o);
      const root = await tempDir(t, "strata-conf-mnt-");
      const write = async (id: string, file: string) => {
        const umount = await mountSpecs(await d.mountSpec(id, { readonly: false }), join(root, id));
        try {
          await writeFile(join(root, id, file), file);
        } finally {
          await umount();
          await d.put(id);
        }
      };
      await d.createReadWrite("base", "");
      t.deepEqual(await d.mountSpec("base", { readonly: false }), await d.mountSpec("base", { readonly: false }));
      await write("base", "one");
      await d.createReadWrite("child", "base");
      await write("child", "two");
      const umount = await mountSpecs(await d.mountSpec("child", { readonly: true }), join(root, "ro"));
      try {
        t.is(await readFile(join(root, "ro", "one"), "utf8"), "one");
        t.is(await readFile(join(root, "ro", "two"), "utf8"), "two");
        await t.throwsAsync(writeFile(join(root, "ro", "three"), "3"), { code: "EROFS" });
      } finally {
        await umount();
        await d.put("child");
      }
      const base = await mountSpecs(await d.mountSpec("base", { readonly: true }), join(root, "base-ro"));
      try {
        t.deepEqual(
          (await readdir(join(root, "base-ro"))).filter((n) => n !== "lost+found"),
          ["one"],
        );
      } finally {
        await base();
        await d.put("base");
      }
      await t.throwsAsync(d.mountSpec("missing", { readonly: true }), { code: "ERR_LAYER_NOT_FOUND" });
      await d.remove("child");
      await d.remove("base");
    },
  );

  test(title("remove deletes a layer, and removing a missing id succeeds"), async (t) => {
    const d = await openDriver(t, factory, o);
    await d.create("a", "");
    await d.create("b", "a");
    await d.remove("b");
    t.false(await d.exists("b"));
    await d.remove("a");
    t.false(await d.exists("a"));
    await t.notThrowsAsync(d.remove("never-was"));
    const err = await t.throwsAsync(d.get("a"));
    t.is((err as { code?: string }).code, "ERR_LAYER_NOT_FOUND");
  });

  test(title("status and metadata answer"), async (t) => {
    const d = await openDriver(t, factory, o);
    const st = await d.status();
    t.true(st.length > 0);
    t.true(st.every(([k, v]) => typeof k === "string" && typeof v === "string" && k.length > 0));
    await d.create("a", "");
    const md = await d.metadata("a");
    t.true(Object.keys(md).length > 0);
  });

  test(title("concurrent create/get/put/remove on different ids"), async (t) => {
    const d = await openDriver(t, factory, o);
    await d.create("base", "");
    const ids = Array.from({ length: 12 }, (_, i) => `c${i}`);
    await Promise.all(
      ids.map(async (id) => {
        await d.createReadWrite(id, "base");
        const p = await d.get(id);
        await writeFile(join(p, "own"), id);
        t.is(await readFile(join(p, "own"), "utf8"), id);
        await d.put(id);
        await d.remove(id);
      }),
    );
    for (const id of ids) t.false(await d.exists(id));
    t.true(await d.exists("base"));
  });

  test(
    title("xattrs the kernel would read as overlay metadata change nothing: the tree is the tar's (issue 19)"),
    async (t) => {
      // On overlay these would hide the lower "keep/" (opaque), white out "etc/hosts" (xattr
      // whiteout) and show the lower "etc/" as "x/" (redirect) if they reached the diff dir.
      const d = await openDriver(t, factory, o);
      const mounts = await countedMounts(t, d);
      const y = Buffer.from("y");
      const base: Spec[] = [
        { name: "etc/", mode: 0o755 },
        { name: "etc/hosts", content: "lower hosts\n" },
        { name: "keep/", mode: 0o755 },
        { name: "keep/lower-file", content: "lower" },
      ];
      const forged: Record<string, Record<string, string | Buffer>> = {
        "keep/": { "trusted.overlay.opaque": y, "user.overlay.opaque": y },
        "etc/": { "trusted.overlay.whiteouts": y, "user.overlay.whiteouts": y },
        "etc/hosts": { "trusted.overlay.whiteout": y, "user.overlay.whiteout": y },
        "x/": { "trusted.overlay.redirect": "/etc", "user.overlay.redirect": "/etc" },
        "x/f": { "security.selinux": "system_u:object_r:shadow_t:s0", "trusted.overlay.metacopy": "" },
      };
      const cap = Buffer.from("0100000200200000000000000000000000000000", "hex");
      const top = (withForged: boolean): Spec[] =>
        [
          { name: "keep/", mode: 0o755 },
          { name: "keep/upper-file", content: "upper" },
          { name: "etc/", mode: 0o755 },
          { name: "etc/hosts", content: "" },
          { name: "x/", mode: 0o755 },
          { name: "x/f", content: "f", xattrs: { "security.capability": cap, "user.kept": "yes" } },
        ].map((s: Spec) => (withForged ? { ...s, xattrs: { ...s.xattrs, ...forged[s.name] } } : s));
      await d.create("base", "");
      await mounts.applyDiff("base", "", Readable.from(chunks(await makeTar(base))));
      await d.create("top", "base");
      await mounts.applyDiff("top", "base", Readable.from(chunks(await makeTar(top(true)))));
      const flat = await tempDir(t, "strata-flat-");
      await applyLayer(flat, chunks(await makeTar(base)));
      await applyLayer(flat, chunks(await makeTar(top(false))));
      const p = await mounts.acquire("top");
      try {
        t.is(await readFile(join(p, "keep/lower-file"), "utf8"), "lower", "keep/ is not opaque");
        t.is(await readFile(join(p, "etc/hosts"), "utf8"), "", "etc/hosts is not whited out");
        t.deepEqual(await readdir(join(p, "x")), ["f"], "x/ is not redirected");
        t.deepEqual(await manifest(p, { mtime: false }), await manifest(flat, { mtime: false }));
      } catch (err) {
        await dump(t, d, "top");
        throw err;
      } finally {
        await mounts.release("top");
      }
    },
  );
}
