/**
 * The shape of src/image: its parts import downward only (spec ← records ←
 * import ← formats, distribution), no file imports the CLI, there are no
 * import cycles between its files, and no product file reads environment
 * variables as test seams.
 */
import test from "ava";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), "../../../src");
const IMAGE = join(SRC, "image");

/** What each part of src/image may import from the others. */
const ALLOWED: Record<string, string[]> = {
  spec: [],
  records: ["spec"],
  import: ["records", "spec"],
  formats: ["import", "records", "spec"],
  distribution: ["import", "records", "spec"],
};

async function productFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith(".ts") && !e.name.endsWith(".test.ts")) out.push(join(e.parentPath, e.name));
  }
  return out.sort();
}

/** The files of `src/` that `file` imports (type imports too), as absolute .ts paths. */
async function importsOf(file: string): Promise<string[]> {
  const text = await readFile(file, "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+"(\.[^"]+)"/g)) {
    out.push(resolve(dirname(file), m[1]!.replace(/\.js$/, ".ts")));
  }
  return out;
}

/** The part of src/image a file belongs to ("" for index.ts and the README's level). */
const partOf = (file: string) => {
  const rel = relative(IMAGE, file);
  return rel.includes("/") ? rel.split("/")[0]! : "";
};

test("the parts of src/image import only the parts below them", async (t) => {
  const files = await productFiles(IMAGE);
  t.deepEqual([...new Set(files.map(partOf))].sort(), ["", ...Object.keys(ALLOWED)].sort());
  const wrong: string[] = [];
  for (const f of files) {
    const part = partOf(f);
    if (part === "") continue;
    for (const target of await importsOf(f)) {
      if (!target.startsWith(`${IMAGE}/`)) continue;
      const to = partOf(target);
      if (to !== part && !ALLOWED[part]!.includes(to)) wrong.push(`${relative(SRC, f)} -> ${relative(SRC, target)}`);
    }
  }
  t.deepEqual(wrong, []);
});

test("nothing outside src/cli imports src/cli, and src/image has no import cycle", async (t) => {
  const files = await productFiles(SRC);
  const graph = new Map<string, string[]>();
  for (const f of files) graph.set(f, await importsOf(f));
  const intoCli = [...graph].flatMap(([f, deps]) =>
    f.startsWith(join(SRC, "cli"))
      ? []
      : deps
          .filter((d) => d.startsWith(`${join(SRC, "cli")}/`))
          .map((d) => `${relative(SRC, f)} -> ${relative(SRC, d)}`),
  );
  t.deepEqual(intoCli, []);
  // Depth-first search for a back edge among the files of src/image (other folders check their own).
  const state = new Map<string, "open" | "done">();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === "done") return;
    if (state.get(f) === "open") {
      cycles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(SRC, p)).join(" -> "));
      return;
    }
    state.set(f, "open");
    for (const d of graph.get(f) ?? []) if (d.startsWith(`${IMAGE}/`)) visit(d, [...path, f]);
    state.set(f, "done");
  };
  for (const f of files.filter((f) => f.startsWith(`${IMAGE}/`))) visit(f, []);
  t.deepEqual(cycles, []);
});

test("src/image reads no environment variables and keeps its files small", async (t) => {
  const env: string[] = [];
  const big: string[] = [];
  for (const f of await productFiles(IMAGE)) {
    const text = await readFile(f, "utf8");
    if (/process\.env\b/.test(text) && !f.endsWith("distribution/auth.ts")) env.push(relative(SRC, f));
    if (text.split("\n").length > 400) big.push(relative(SRC, f));
  }
  // auth.ts reads DOCKER_CONFIG, as the docker CLI does: configuration, not a test seam.
  t.deepEqual(env, []);
  t.deepEqual(big, []);
});
