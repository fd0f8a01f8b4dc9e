/**
 * `strata layer apply|ls|export|rm`.
 *
 * @module
 */
import { createReadStream, createWriteStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import { decompress } from "../../archive/compression.js";
import { FailedPreconditionError } from "../../errors.js";
import type { Digest } from "../../layer/index.js";
import { humanSize, printTable, resolveLayer, short, withStore } from "../context.js";
import { byteProgress } from "../progress.js";

/** The named reference `layer apply` keeps on what it stores, so it survives until `layer rm`. */
export const USER_REF = "user";

export function layerCommands(program: Command): void {
  const layer = program.command("layer").description("image layers");

  layer
    .command("apply <file>")
    .description("apply a layer tar (any compression; - for stdin) and print its chainID")
    .option("--parent <chainID>", "parent layer")
    .action(async (file: string, o: { parent?: string }, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        const parent: Digest | "" = o.parent ? await resolveLayer(store, o.parent, g.root) : "";
        const input: Readable = file === "-" ? process.stdin : createReadStream(file);
        const total = file === "-" ? 0 : (await stat(file)).size;
        const progress = byteProgress("apply", total);
        input.pipe(progress.stream);
        input.on("error", (err) => progress.stream.destroy(err));
        try {
          const { stream } = await decompress(progress.stream);
          const info = await store.register(stream, parent, { ref: USER_REF });
          progress.done();
          console.log(info.chainID);
        } catch (err) {
          progress.done();
          throw err;
        }
      });
    });

  layer
    .command("ls")
    .description("list layers")
    .action(async (_o: unknown, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        const rows = [];
        for (const l of await store.layers()) {
          rows.push({
            chainID: g.json ? l.chainID : short(l.chainID),
            diffID: g.json ? l.diffID : short(l.diffID),
            parent: g.json ? l.parent : short(l.parent),
            depth: l.depth,
            size: g.json ? l.size : humanSize(l.size),
            refs: (await store.referencesOf(l.chainID)).length,
          });
        }
        printTable(g, rows, ["chainID", "diffID", "parent", "depth", "size", "refs"]);
      });
    });

  layer
    .command("export <chainID>")
    .description("write the layer's exact original tar")
    .requiredOption("-o, --output <file>", "output file")
    .action(async (ref: string, o: { output: string }, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        const id = await resolveLayer(store, ref, g.root);
        await pipeline(await store.tarStream(id), createWriteStream(o.output));
      });
    });

  layer
    .command("rm <chainID>")
    .description("remove a layer applied with `layer apply` (refused while anything else uses it)")
    .action(async (ref: string, _o: unknown, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        const id = await resolveLayer(store, ref, g.root);
        const others = (await store.referencesOf(id)).filter((r) => r !== `ref:${USER_REF}`);
        if (others.length > 0) {
          throw new FailedPreconditionError(
            "ERR_LAYER_IN_USE",
            `Cannot remove layer: in use by ${others.join(", ")} "${id}"`,
          );
        }
        for (const d of await store.removeRef(id, USER_REF)) console.log(`deleted ${d}`);
      });
    });
}
