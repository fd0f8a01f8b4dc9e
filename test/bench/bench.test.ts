/**
 * `strata bench`: one quick run (every driver here, the installed peers) into
 * a temp dir, shared by the tests below; the report is rendered in headless
 * Chromium. STRATA_BENCH_TEST_PEERS narrows the peers (default: all; a
 * missing one is skipped by the harness with its reason).
 */
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import type { BenchResults } from "../../src/bench/harness/index.js";
import { QUICK } from "../../src/bench/harness/index.js";
import { dumpDom, screenshot } from "../helpers/chromium.js";
import { strata } from "../helpers/cli.js";

const PEERS = process.env.STRATA_BENCH_TEST_PEERS ?? "tar,docker,umoci,containerd";

let ran: Promise<{ dir: string; results: BenchResults; stderr: string }> | undefined;
let benchDir: string | undefined;

// The run is shared by the tests of this file, so its directory outlives each test.
test.after.always(async () => {
  if (benchDir) await rm(benchDir, { recursive: true, force: true });
});

/** Runs the quick bench once (with one run per workload, to keep the suite short). */
function quickRun() {
  ran ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), "strata-bench-"));
    benchDir = dir;
    const r = await strata([
      "bench",
      "--quick",
      "--runs",
      "1",
      `--peers=${PEERS}`,
      "--out",
      join(dir, "out"),
      "--corpus",
      join(dir, "corpus"),
    ]);
    if (r.code !== 0) throw new Error(`strata bench failed (${r.code}): ${r.stderr.slice(-2000)}`);
    const results = JSON.parse(await readFile(join(dir, "out", "results.json"), "utf8")) as BenchResults;
    return { dir, results, stderr: r.stderr };
  })();
  return ran;
}

/** The workload ids the quick preset must produce for every driver that ran. */
function expectedDriverWorkloads(): string[] {
  const q = QUICK;
  return [
    "apply/rootfs",
    "apply/smallfiles",
    "apply/largefiles",
    "apply/image10",
    "container/create",
    "container/mount",
    "container/unmount",
    ...q.concurrency.map((c) => `start/${c}`),
    ...q.changedFiles.flatMap((n) => [`diff/${n}`, `commit/${n}`]),
    ...q.chainDepths.flatMap((d) => [`chain-create/${d}`, `chain-read/${d}`]),
    `remove/${q.containers}-containers`,
    "remove/image",
    "disk/image",
    `disk/image+${q.containers}-containers`,
    ...["apply", "container", "start", "commit", "chain", "remove", "disk"].map((f) => `memory/${f}`),
  ];
}

test.serial("strata bench --quick writes results.json with every workload measured, per driver and peer", async (t) => {
  const { results, stderr } = await quickRun();
  t.is(results.format, "strata-bench/2");
  t.true(results.machine.cores > 0);
  t.truthy(results.machine.kernel);
  t.truthy(results.machine.inputFs);
  t.is(results.filesystem?.type, "ext4");
  t.regex(results.filesystem?.description ?? "", /fresh for every timed run/);
  const drivers = [...new Set(results.measurements.filter((m) => m.kind === "driver").map((m) => m.subject))];
  t.true(drivers.includes("vfs"), "vfs always runs");
  for (const d of drivers)
    for (const w of expectedDriverWorkloads()) {
      const m = results.measurements.find((x) => x.subject === d && x.workload === w);
      t.truthy(m, `${d} ${w} measured`);
      if (!m) continue;
      t.is(m.samples.length, 1);
      t.true(Number.isFinite(m.median) && m.median > 0, `${d} ${w} = ${m.median}`);
      t.true(m.min <= m.median && m.median <= m.max);
    }
  // Every peer asked for either measured apply/* or was skipped with a printed reason.
  for (const p of PEERS.split(",")) {
    const skipped = results.skipped.find((s) => s.subject === p);
    if (skipped) {
      t.truthy(skipped.reason);
      t.true(stderr.includes(`peer ${p}`), `reason for ${p} printed`);
      continue;
    }
    for (const w of ["apply/rootfs", "apply/smallfiles", "apply/largefiles", "apply/image10"])
      t.truthy(
        results.measurements.find((m) => m.subject === p && m.workload === w),
        `${p} ${w}`,
      );
    t.true(
      results.ratios.some((r) => r.peer === p && r.driver === "vfs" && r.ratio > 0),
      `ratios vs ${p}`,
    );
  }
  t.is(results.corpus.rootfs?.kind, "rootfs-like", "--quick says the rootfs is generated");
  t.truthy(results.corpus.rootfs?.note);
});

test.serial("report.html renders in headless Chromium with every chart drawn", async (t) => {
  const { dir, results } = await quickRun();
  const html = join(dir, "out", "report.html");
  t.false((await readFile(html, "utf8")).includes("<script"), "self-contained, no scripts");
  const png = join(dir, "report.png");
  await screenshot(t, html, png);
  t.true((await stat(png)).size > 20_000, "the screenshot has content");
  t.log(`screenshot: ${png}`);
  const dom = await dumpDom(t, html);
  const charts = [...dom.matchAll(/<div class="chart" data-family="(\w+)">([\s\S]*?)<\/svg><\/div>/g)];
  const families = new Set(results.measurements.map((m) => m.family));
  t.is(charts.length, families.size, "one chart per measured family");
  for (const [, family, svg] of charts) {
    const measured = results.measurements.filter((m) => m.family === family).length;
    // Vega draws each bar as a <path> with a "bar" role, each min–max error bar as a rule <line>.
    const bars = (svg!.match(/aria-roledescription="bar" d="M[^"]+"/g) ?? []).length;
    const rules = (svg!.match(/aria-roledescription="rule mark"/g) ?? []).length;
    t.is(bars, measured, `${family}: one bar per measurement`);
    t.is(rules, measured, `${family}: one error bar per measurement`);
  }
});

test.serial(
  "report.html is read by people choosing a driver: filesystem, corpus, one colour per subject, full width",
  async (t) => {
    const { dir, results } = await quickRun();
    const html = await readFile(join(dir, "out", "report.html"), "utf8");
    t.true(html.includes(results.filesystem!.description.replace(/&/g, "&amp;")), "the filesystem is on the page");
    for (const c of Object.values(results.corpus))
      t.true(html.includes(`<td>${c.files.toLocaleString("en-US")}</td>`), `corpus size ${c.files} on the page`);
    const titles = [...html.matchAll(/<h2 id="(\w+)">([^<]*)<\/h2><div class="chart"/g)];
    t.true(titles.length > 0);
    for (const [, family, title] of titles) t.regex(title!, /lower is better/, `${family} says lower is better`);
    // One colour per driver or peer, the same in every chart.
    const colours = new Map<string, Set<string>>();
    for (const [, subject, fill] of html.matchAll(
      /aria-label="subject: ([^;"]+);[^"]*" [^>]*aria-roledescription="bar"[^>]*fill="([^"]+)"/g,
    )) {
      if (!colours.has(subject!)) colours.set(subject!, new Set());
      colours.get(subject!)!.add(fill!);
    }
    t.true(colours.size >= 2);
    for (const [subject, fills] of colours) t.is(fills.size, 1, `${subject} has one colour: ${[...fills].join(", ")}`);
    t.is(new Set([...colours.values()].map((f) => [...f][0])).size, colours.size, "no two subjects share a colour");
    // Laid out by Chromium in a 1400 px window: every chart as wide as the page's column, the ratio table within it.
    const probe = join(dir, "out", "probe.html");
    const script = `<script>
const col = document.querySelector(".chart").getBoundingClientRect().width;
const out = { col, svgs: [...document.querySelectorAll(".chart svg")].map((s) => s.getBoundingClientRect().width),
  ratios: document.querySelector("table.ratios")?.getBoundingClientRect().width ?? 0, body: document.body.clientWidth };
document.body.setAttribute("data-layout", JSON.stringify(out));
</script></body>`;
    await writeFile(probe, html.replace("</body>", script));
    const dom = await dumpDom(t, probe);
    const layout = JSON.parse(/data-layout="([^"]+)"/.exec(dom)![1]!.replace(/&quot;/g, '"')) as {
      col: number;
      svgs: number[];
      ratios: number;
      body: number;
    };
    t.true(layout.col >= layout.body - 60, `chart column ${layout.col} of body ${layout.body}`);
    for (const w of layout.svgs)
      t.true(Math.abs(w - layout.col) < 1, `chart ${w} px wide in a ${layout.col} px column`);
    t.true(layout.ratios <= layout.col, `ratio table ${layout.ratios} px fits the ${layout.col} px column`);
  },
);

test.serial("strata bench --compare reports a regression and an improvement", async (t) => {
  const { dir, results } = await quickRun();
  const oldFile = join(dir, "old.json");
  const newFile = join(dir, "new.json");
  const changed = structuredClone(results);
  changed.measurements[0]!.median *= 2;
  changed.measurements[1]!.median /= 2;
  await writeFile(oldFile, JSON.stringify(results));
  await writeFile(newFile, JSON.stringify(changed));
  const r = await strata(["bench", "--compare", oldFile, newFile]);
  t.is(r.code, 0, r.stderr);
  const first = results.measurements[0]!;
  t.regex(r.stdout, new RegExp(`REGRESSION\\s+${first.subject}\\s+${first.workload.replace("+", "\\+")}\\s`));
  t.regex(r.stdout, /IMPROVEMENT/);
  t.regex(r.stdout, /1 regressions, 1 improvements/);
});

test("strata bench refuses an unknown workload family or peer with one line and exit 2", async (t) => {
  const a = await strata(["bench", "--workloads", "apply,nope"]);
  t.is(a.code, 2);
  t.regex(a.stderr, /unknown workload family "nope".*\[ERR_INVALID_OPTION\]/);
  const b = await strata(["bench", "--peers", "podman"]);
  t.is(b.code, 2);
  t.regex(b.stderr, /unknown peer "podman"/);
  const c = await strata(["bench", "--compare", "/nonexistent/a.json", "/nonexistent/b.json"]);
  t.is(c.code, 2);
  t.regex(c.stderr, /Cannot compare/);
});
