/**
 * A seeded fuzz test of the archive loaders: a three-layer image as a
 * docker-archive and as an OCI layout (tar file or directory), damaged at
 * random — bytes flipped, the archive cut short, and the JSON documents
 * (manifest.json, index.json, manifests, configs) changed field by field,
 * with the digests that name them recomputed so the damage reaches the
 * parsers — then loaded into a real LayerStore. Every run must end in
 * success or one StrataError (a stable code, never a TypeError or a
 * crash), memory must stay bounded, and after a failure nothing may be
 * left half done: the store is as empty and consistent as `strata check`
 * would want it.
 *
 * STRATA_FUZZ_RUNS sets the number of runs per form (default 12);
 * STRATA_FUZZ_SEED the seed (default 1), printed for reproduction.
 */
import test from "ava";
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { StrataError } from "../../src/errors.js";
import { loadImages, releaseImageLayers } from "../../src/image/index.js";
import { makeTar } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { assertEmpty, stores } from "../image/common.js";
import { fixtureLayers } from "../image/fixture.js";

const RUNS = Number(process.env.STRATA_FUZZ_RUNS ?? 12);
const SEED = Number(process.env.STRATA_FUZZ_SEED ?? 1);
/** RSS growth allowed over a whole fuzz test. */
const RSS_BOUND = 512 << 20;

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** A small seeded PRNG (mulberry32). */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]!,
  };
}
type Rng = ReturnType<typeof prng>;

/** An archive as named files, and how to fix up digests after a JSON document changed. */
interface Archive {
  files: Map<string, Buffer>;
  /** JSON documents that may be damaged, and what to redo after one was. */
  documents: string[];
  rehash(name: string): void;
}

async function dockerArchive(): Promise<Archive> {
  const tars = await fixtureLayers(3);
  const files = new Map<string, Buffer>();
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Cmd: ["/bin/tool"] },
      rootfs: { type: "layers", diff_ids: tars.map(sha) },
      history: tars.map(() => ({ created_by: "fuzz" })),
    }),
  );
  let cfgName = `${sha(config).slice(7)}.json`;
  files.set(cfgName, config);
  tars.forEach((t, i) => files.set(`l${i}/layer.tar`, t));
  const manifest = () => [
    { Config: cfgName, RepoTags: ["fuzz/docker:1"], Layers: tars.map((_, i) => `l${i}/layer.tar`) },
  ];
  files.set("manifest.json", Buffer.from(JSON.stringify(manifest())));
  const archive: Archive = {
    files,
    documents: ["manifest.json", cfgName],
    rehash(name) {
      if (name === "manifest.json") return;
      // The config is named by its digest: move it and point manifest.json at the new name.
      const bytes = files.get(name)!;
      files.delete(name);
      cfgName = `${sha(bytes).slice(7)}.json`;
      files.set(cfgName, bytes);
      archive.documents = ["manifest.json", cfgName];
      const m = JSON.parse(files.get("manifest.json")!.toString()) as Array<{ Config: unknown }>;
      if (Array.isArray(m) && m[0] && typeof m[0] === "object") m[0].Config = cfgName;
      files.set("manifest.json", Buffer.from(JSON.stringify(m)));
    },
  };
  return archive;
}

async function ociLayout(): Promise<Archive> {
  const tars = await fixtureLayers(4);
  const files = new Map<string, Buffer>();
  const blob = (b: Buffer) => {
    files.set(`blobs/sha256/${sha(b).slice(7)}`, b);
    return { digest: sha(b), size: b.length };
  };
  const config = Buffer.from(
    JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: tars.map(sha) } }),
  );
  const layers = tars.map((t) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", ...blob(t) }));
  const names = { config: "", manifest: "" };
  const writeManifest = (cfg: { digest: string; size: number }) => {
    const m = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...cfg },
        layers,
      }),
    );
    return blob(m);
  };
  const writeIndex = (man: { digest: string; size: number }) =>
    files.set(
      "index.json",
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          manifests: [
            {
              mediaType: "application/vnd.oci.image.manifest.v1+json",
              ...man,
              annotations: { "org.opencontainers.image.ref.name": "fuzz/oci:1" },
            },
          ],
        }),
      ),
    );
  const cfg = blob(config);
  names.config = `blobs/sha256/${cfg.digest.slice(7)}`;
  const man = writeManifest(cfg);
  names.manifest = `blobs/sha256/${man.digest.slice(7)}`;
  writeIndex(man);
  files.set("oci-layout", Buffer.from(JSON.stringify({ imageLayoutVersion: "1.0.0" })));
  const archive: Archive = {
    files,
    documents: ["index.json", names.manifest, names.config],
    rehash(name) {
      if (name === "index.json") return;
      const bytes = files.get(name)!;
      files.delete(name);
      const moved = blob(bytes);
      // The damaged document gets its new digest; the documents above it are rewritten to point at it.
      if (name === names.config) {
        names.config = `blobs/sha256/${moved.digest.slice(7)}`;
        files.delete(names.manifest);
        const m = writeManifest(moved);
        names.manifest = `blobs/sha256/${m.digest.slice(7)}`;
        writeIndex(m);
      } else {
        names.manifest = `blobs/sha256/${moved.digest.slice(7)}`;
        writeIndex(moved);
      }
      archive.documents = ["index.json", names.manifest, names.config];
    },
  };
  return archive;
}

/** A value to put where a JSON field was. */
function hostileValue(rng: Rng): unknown {
  switch (rng.int(12)) {
    case 0:
      return null;
    case 1:
      return rng.int(2) === 0;
    case 2:
      return -1;
    case 3:
      return 2 ** 53 + rng.int(1000);
    case 4:
      return 1e300;
    case 5:
      return "";
    case 6:
      return "sha256:" + "z".repeat(64);
    case 7:
      return "x".repeat(1 + rng.int(1 << 16));
    case 8:
      return [];
    case 9:
      return {};
    case 10: {
      let v: unknown = [];
      for (let i = 0; i < 2000; i++) v = [v];
      return v;
    }
    default:
      return "../../../etc/passwd";
  }
}

/** Changes one field (or element) somewhere in a JSON document; returns what it did. */
function damageJson(doc: unknown, rng: Rng): { doc: unknown; what: string } {
  const paths: Array<Array<string | number>> = [[]];
  const walk = (v: unknown, path: Array<string | number>) => {
    if (Array.isArray(v)) v.forEach((x, i) => (paths.push([...path, i]), walk(x, [...path, i])));
    else if (v && typeof v === "object")
      for (const [k, x] of Object.entries(v)) (paths.push([...path, k]), walk(x, [...path, k]));
  };
  walk(doc, []);
  const path = rng.pick(paths);
  if (path.length === 0) return { doc: hostileValue(rng), what: "the whole document replaced" };
  const parent = path.slice(0, -1).reduce((v: any, k) => v[k], doc as any);
  const key = path.at(-1)!;
  if (rng.int(3) === 0 && !Array.isArray(parent)) {
    delete parent[key];
    return { doc, what: `${path.join(".")} deleted` };
  }
  parent[key] = hostileValue(rng);
  return { doc, what: `${path.join(".")} replaced` };
}

/** Damages `a` (one of: a JSON field, flipped bytes, a cut) and returns the bytes of the archive as a tar. */
async function damage(a: Archive, rng: Rng): Promise<{ tar: Buffer; what: string }> {
  let what = "nothing";
  if (rng.int(4) !== 0) {
    const name = rng.pick(a.documents);
    let doc: unknown;
    try {
      doc = JSON.parse(a.files.get(name)!.toString());
    } catch {
      doc = null;
    }
    const d = damageJson(doc, rng);
    a.files.set(name, Buffer.from(JSON.stringify(d.doc) ?? "null"));
    a.rehash(name);
    what = `${name}: ${d.what}`;
  }
  const tar = await makeTar([...a.files].map(([name, content]) => ({ name, content })));
  switch (rng.int(4)) {
    case 0: {
      const n = 1 + rng.int(8);
      for (let i = 0; i < n; i++) tar[rng.int(tar.length)] ^= 1 + rng.int(255);
      return { tar, what: `${what}; ${n} bytes flipped` };
    }
    case 1: {
      const at = rng.int(tar.length);
      return { tar: tar.subarray(0, at), what: `${what}; cut at ${at}` };
    }
    default:
      return { tar, what };
  }
}

for (const [form, make] of [
  ["docker-archive", dockerArchive],
  ["OCI layout", ociLayout],
] as const) {
  for (const asDir of [false, true]) {
    test(`fuzz: a damaged ${form}${asDir ? " directory" : ""} loads or fails with one StrataError, leaving nothing behind`, async (t) => {
      const seed = SEED * 1000 + (form === "docker-archive" ? 0 : 100) + (asDir ? 10 : 0);
      t.log(`seed ${seed}, ${RUNS} runs (STRATA_FUZZ_SEED, STRATA_FUZZ_RUNS)`);
      const rng = prng(seed);
      const s = await stores(t);
      const work = await tempDir(t, "strata-fuzz-");
      const rss0 = process.memoryUsage().rss;
      let peak = 0;
      const outcomes = new Map<string, number>();
      for (let run = 0; run < RUNS; run++) {
        const a = await make();
        const { tar, what } = await damage(a, rng);
        let input = join(work, `run-${run}.tar`);
        if (asDir) {
          // The directory form: the (possibly damaged) members written as files; cut or flipped tars stay tars.
          input = join(work, `run-${run}`);
          for (const [name, content] of a.files) {
            await mkdir(dirname(join(input, name)), { recursive: true });
            await writeFile(join(input, name), content);
          }
        } else await writeFile(input, tar);
        let outcome: string;
        try {
          const recs = await loadImages(input, s.sink, s.store);
          outcome = "loaded";
          for (const rec of recs) {
            const res = await s.store.remove(rec.id, { force: true });
            await releaseImageLayers(s.layers, res.unusedChainIDs);
          }
        } catch (err) {
          if (!(err instanceof StrataError)) {
            t.fail(`run ${run} (${what}): not a StrataError: ${(err as Error)?.stack ?? String(err)}`);
            return;
          }
          outcome = err.code;
          t.false(err.message.includes("\n"), `run ${run}: one line: ${err.message}`);
        }
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        // After each run, success (then removed) or failure, the stores are empty and consistent.
        await assertEmpty(t, s);
        peak = Math.max(peak, process.memoryUsage().rss - rss0);
      }
      t.log([...outcomes].map(([k, v]) => `${k} ×${v}`).join(", "));
      t.true(peak < RSS_BOUND, `RSS grew by ${peak >> 20} MiB`);
    });
  }
}
