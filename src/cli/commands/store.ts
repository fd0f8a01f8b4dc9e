/**
 * `strata info|check|prune`.
 *
 * @module
 */
import type { Command } from "commander";
import { check, prune } from "../../layer/index.js";
import { withStore } from "../context.js";

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
    .description("verify the store (refcounts, orphans, driver layers, mounts)")
    .option("--repair", "fix what is found")
    .action(async (o: { repair?: boolean }, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        const problems = await check(store, o.repair ?? false);
        if (g.json) console.log(JSON.stringify(problems, null, 2));
        else
          for (const p of problems)
            console.log(`${o.repair ? "repaired" : "problem"}: ${p.kind} ${p.subject}: ${p.detail}`);
        if (!g.json && problems.length === 0) console.log("store is consistent");
        if (problems.length > 0 && !o.repair) process.exitCode = 1;
      });
    });

  program
    .command("prune")
    .description("remove layers nothing references")
    .action(async (_o: unknown, cmd: Command) => {
      await withStore(cmd, async (store) => {
        for (const id of await prune(store)) console.log(`deleted ${id}`);
      });
    });
}
