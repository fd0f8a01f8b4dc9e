/**
 * `strata info|check|prune|system df`: the store as a whole.
 *
 * `check` and `prune` look at both stores: the layer store's own consistency
 * (`src/layer/check.ts`) and its image references against the image
 * records (`src/image/records/ref-check.ts`), which only the `Store` facade
 * (`src/store`) knows together.
 *
 * @module
 */
import type { Command } from "commander";
import type { Store } from "../../store/index.js";
import { humanSize } from "../../util/size.js";
import { print, withStore } from "../context.js";
import { jsonDocument, renderListing } from "../output.js";
import { defineVerb } from "../verbs.js";

/** One row of `system df`. */
interface DfRow {
  type: string;
  total: number;
  active: number;
  size: number;
  reclaimable: number;
}

/** docker's "1.2GB (45%)". */
function reclaimable(r: DfRow): string {
  const pct = r.size > 0 ? ` (${Math.floor((r.reclaimable * 100) / r.size)}%)` : "";
  return `${humanSize(r.reclaimable)}${pct}`;
}

const DF_LISTING = {
  table: "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
  headers: { Type: "TYPE", TotalCount: "TOTAL", Active: "ACTIVE", Size: "SIZE", Reclaimable: "RECLAIMABLE" },
  quiet: "{{.Type}}",
  api: (r: DfRow) => ({
    Type: r.type,
    TotalCount: r.total,
    Active: r.active,
    Size: r.size,
    Reclaimable: r.reclaimable,
  }),
  fields: (r: DfRow) => ({
    Type: r.type,
    TotalCount: String(r.total),
    Active: String(r.active),
    Size: humanSize(r.size),
    Reclaimable: reclaimable(r),
  }),
};

/** Disk use as docker system df counts it: images by distinct layers, containers by their writable layers. */
async function diskUsage(store: Store): Promise<DfRow[]> {
  const images = await store.images.list();
  const containers = await store.containers.list();
  const sizes = new Map<string, number>();
  for (const l of await store.layerStore.layers()) sizes.set(l.chainID, l.size);
  const layersOf = (list: typeof images) => new Set(list.flatMap((i) => i.layers));
  const sum = (ids: Set<string>) => [...ids].reduce((n, c) => n + (sizes.get(c) ?? 0), 0);
  const active = images.filter((i) => i.containers > 0);
  const imageSize = sum(layersOf(images));
  let containerSize = 0;
  let idleSize = 0;
  for (const c of containers) {
    const n = await store.containers.size(c.id);
    containerSize += n;
    if (c.mounts === 0) idleSize += n;
  }
  return [
    {
      type: "Images",
      total: images.length,
      active: active.length,
      size: imageSize,
      reclaimable: imageSize - sum(layersOf(active)),
    },
    {
      type: "Containers",
      total: containers.length,
      active: containers.filter((c) => c.mounts > 0).length,
      size: containerSize,
      reclaimable: idleSize,
    },
  ];
}

/** Adds the whole-store commands. */
export function storeCommands(program: Command): void {
  defineVerb(program, "info").action(async (_o: unknown, cmd: Command) => {
    await withStore(cmd, async (store, g) => {
      const status = await store.driver.status();
      const layers = (await store.layerStore.layers()).length;
      const containers = (await store.layerStore.containers()).length;
      const images = (await store.images.records.ids()).length;
      if (g.json) {
        print(
          jsonDocument({
            Driver: store.driver.name,
            DriverStatus: [...status],
            RootDir: store.root,
            Images: images,
            Containers: containers,
            Layers: layers,
          }),
        );
        return;
      }
      print(`Root Dir: ${store.root}`, `Storage Driver: ${store.driver.name}`);
      for (const [k, v] of status) print(` ${k}: ${v}`);
      print(`Images: ${images}`, `Containers: ${containers}`, `Layers: ${layers}`);
    });
  });

  defineVerb(program, "check")
    .option("--repair", "fix what is found")
    .action(async (o: { repair?: boolean }, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        const repair = o.repair ?? false;
        const problems = await store.check(repair);
        if (g.json) print(jsonDocument(problems));
        else
          for (const p of problems) {
            const unrepaired = p.unrepaired ? ` (${p.unrepaired})` : "";
            print(
              `${repair && !unrepaired ? "repaired" : "problem"}: ${p.kind} ${p.subject}: ${p.detail}${unrepaired}`,
            );
          }
        if (!g.json && problems.length === 0) print("store is consistent");
        // Exit 1 while anything is left: every problem without --repair, what a repair could not fix with it.
        if (problems.some((p) => !repair || p.unrepaired)) process.exitCode = 1;
      });
    });

  defineVerb(program, "prune").action(async (_o: unknown, cmd: Command) => {
    await withStore(cmd, async (store, g) => {
      const deleted = await store.prune();
      if (g.json) print(jsonDocument(deleted.map((d) => ({ Deleted: d }))));
      else for (const id of deleted) print(`Deleted: ${id}`);
    });
  });

  const system = defineVerb(program, "system");
  system
    .command("df")
    .description("Show disk usage")
    .option("--format <format>", "json, table, or a Go template ({{.Type}} {{.Size}} {{.Reclaimable}} ...)")
    .action(async (o: { format?: string }, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        print(...renderListing(await diskUsage(store), { ...o, json: g.json }, DF_LISTING));
      });
    });
}
