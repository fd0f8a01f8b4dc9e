/**
 * `strata info|check|prune`.
 *
 * `check` and `prune` look at both stores: the layer store's own consistency
 * (`src/layer/recovery.ts`) and its image references against the image
 * records (`src/image/records/ref-check.ts`), which only this level knows together.
 *
 * @module
 */
import type { Command } from "commander";
import { checkImageRefs, type ImageRefReport, withImageStore } from "../../image/index.js";
import type { LayerStore } from "../../layer/index.js";
import { withStore } from "../context.js";

/** Runs the image-reference check of the image records stored beside `store`'s driver. */
async function imageRefs(store: LayerStore, root: string, repair: boolean): Promise<ImageRefReport> {
  return withImageStore(root, store.driver.name, (images) => checkImageRefs(store, images, repair));
}

export function storeCommands(program: Command): void {
  program
    .command("info")
    .description("driver and store summary")
    .action(async (_o: unknown, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        const status = await store.driver.status();
        const layers = (await store.layers()).length;
        const containers = (await store.containers()).length;
        if (g.json) {
          console.log(JSON.stringify({ root: g.root, driver: store.driver.name, status, layers, containers }, null, 2));
          return;
        }
        console.log(`Root: ${g.root}`);
        console.log(`Storage Driver: ${store.driver.name}`);
        for (const [k, v] of status) console.log(` ${k}: ${v}`);
        console.log(`Layers: ${layers}`);
        console.log(`Containers: ${containers}`);
      });
    });

  program
    .command("check")
    .description("verify the store (refcounts, orphans, driver layers, mounts, image references)")
    .option("--repair", "fix what is found")
    .action(async (o: { repair?: boolean }, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        const repair = o.repair ?? false;
        const problems = [...(await store.check(repair)), ...(await imageRefs(store, g.root, repair)).problems];
        if (g.json) console.log(JSON.stringify(problems, null, 2));
        else
          for (const p of problems) {
            const unrepaired = "unrepaired" in p && p.unrepaired ? ` (${p.unrepaired})` : "";
            console.log(
              `${repair && !unrepaired ? "repaired" : "problem"}: ${p.kind} ${p.subject}: ${p.detail}${unrepaired}`,
            );
          }
        if (!g.json && problems.length === 0) console.log("store is consistent");
        // Exit 1 while anything is left: every problem without --repair, what a repair could not fix with it.
        if (problems.some((p) => !repair || ("unrepaired" in p && p.unrepaired))) process.exitCode = 1;
      });
    });

  program
    .command("prune")
    .description("remove layers nothing references (and image references of dead imports or of no image)")
    .action(async (_o: unknown, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        // Layers leaked by killed imports are held by references: drop those first, as check --repair does.
        const { deleted } = await imageRefs(store, g.root, true);
        for (const id of [...deleted, ...(await store.prune())]) console.log(`deleted ${id}`);
      });
    });
}
