/**
 * The published shape: `npm pack` makes a tarball that installs into a
 * scratch project offline (`npm ci --offline`: dependencies pinned by a
 * lockfile, from npm's cache; the native parts shipped or rebuilt by the
 * install step), where `import { openStore } from
 * "strata"` works, TypeScript finds the types, and the `strata` bin runs.
 */
import { execFile } from "node:child_process";
import { copyFile, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";
import { makeTar } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";

const run = promisify(execFile);
const REPO = fileURLToPath(new URL("../../..", import.meta.url));

/** A lockfile for a project depending on the packed tarball, with the repository's production dependencies. */
async function scratchLock(tarball: string, dependencies: Record<string, string>): Promise<unknown> {
  const repo = JSON.parse(await readFile(join(REPO, "package-lock.json"), "utf8")) as {
    packages: Record<string, { dev?: boolean; [k: string]: unknown }>;
  };
  const root = repo.packages[""]!;
  const packages: Record<string, unknown> = {
    "": { name: "scratch", dependencies },
    "node_modules/strata": {
      version: root.version,
      resolved: `file:${tarball}`,
      hasInstallScript: true,
      license: root.license,
      dependencies: root.dependencies,
      bin: root.bin,
      engines: root.engines,
    },
  };
  for (const [path, entry] of Object.entries(repo.packages))
    if (path.startsWith("node_modules/") && !entry.dev) packages[path] = entry;
  return { name: "scratch", lockfileVersion: 3, requires: true, packages };
}

test("npm pack installs offline into a scratch project that imports strata by name", async (t) => {
  const dir = await tempDir(t, "strata-pack-");
  const npm = (args: string[], cwd: string) =>
    run("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], { cwd, maxBuffer: 1 << 26 });
  const packed = await npm(["pack", "--json", "--pack-destination", dir], REPO);
  const info = JSON.parse(packed.stdout)[0] as { filename: string; files: Array<{ path: string }> };
  const files = info.files.map((f) => f.path);
  for (const f of ["dist/src/index.js", "dist/src/index.d.ts", "dist/src/cli/main.js", "binding.gyp", "package.json"])
    t.true(files.includes(f), `the tarball has ${f}`);
  t.false(
    files.some((f) => f.startsWith("test/") || f.startsWith("dist/test/") || f.includes(".test.")),
    "no tests in the package",
  );

  // The scratch project pins strata's dependencies as the repository's lockfile does, so `npm ci
  // --offline` takes them from npm's cache (filled by the repository's own `npm ci`) by integrity,
  // as a consumer's lockfile would: no registry is asked.
  const app = join(dir, "app");
  await mkdir(app);
  await copyFile(join(dir, info.filename), join(app, info.filename));
  const dep = { strata: `file:${info.filename}` };
  await writeFile(
    join(app, "package.json"),
    JSON.stringify({ name: "scratch", private: true, type: "module", dependencies: dep }),
  );
  await writeFile(join(app, "package-lock.json"), JSON.stringify(await scratchLock(info.filename, dep)));
  await npm(["ci", "--offline"], app);

  await writeFile(join(app, "layer.tar"), await makeTar([{ name: "etc/" }, { name: "etc/greeting", content: "hi\n" }]));
  await writeFile(
    join(app, "use.mjs"),
    `import { openStore, humanSize, NotFoundError } from "strata";
const store = await openStore({ root: process.argv[2], driver: "vfs" });
try {
  const { image } = await store.images.import("layer.tar", { tag: "scratch:1" });
  const c = await store.containers.create("c1", "scratch:1");
  const changes = await store.containers.changes("c1");
  const [summary] = await store.images.list();
  let missing = "";
  try { await store.images.resolve("nope:1"); } catch (e) { missing = e instanceof NotFoundError ? e.code : "?"; }
  console.log(JSON.stringify({ id: image.id, tags: summary.repoTags, size: humanSize(summary.size), container: c.name, changes: changes.length, missing }));
  await store.containers.remove("c1");
} finally {
  await store.close();
}
`,
  );
  const { stdout } = await run(process.execPath, ["use.mjs", join(dir, "root")], { cwd: app });
  const out = JSON.parse(stdout);
  t.regex(out.id, /^sha256:[0-9a-f]{64}$/);
  t.deepEqual(out.tags, ["scratch:1"]);
  t.is(out.size, "3B");
  t.is(out.changes, 0);
  t.is(out.missing, "ERR_IMAGE_NOT_FOUND");

  // The types: a TypeScript program importing by name compiles against the package's declarations.
  await writeFile(
    join(app, "typed.ts"),
    `import { openStore, type Store, type ImageSummary } from "strata";
const store: Store = await openStore({ driver: "vfs" });
const list: ImageSummary[] = await store.images.list();
const n: number = list[0]!.size;
export { n };
`,
  );
  await writeFile(
    join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        module: "NodeNext",
        moduleResolution: "NodeNext",
        target: "ES2022",
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: [],
      },
      files: ["typed.ts"],
    }),
  );
  await run(join(REPO, "node_modules/.bin/tsc"), ["-p", "tsconfig.json"], { cwd: app });
  t.pass("typed.ts compiles");

  const bin = await run(join(app, "node_modules/.bin/strata"), ["--version"], { cwd: app });
  t.regex(bin.stdout, /^strata version /);
  t.true((await readdir(join(app, "node_modules/strata/build/Release"))).includes("strata_native.node"));
});
