/**
 * `strata layer apply|ls|export|rm`: layer tars by hand (no docker verb).
 *
 * @module
 */
import type { Command } from "commander";
import type { LayerSummary } from "../../store/index.js";
import { humanSize } from "../../util/size.js";
import { print, withStore } from "../context.js";
import { jsonDocument, renderListing, shortID } from "../output.js";
import { byteProgress, progressMode } from "../progress.js";
import { openInput, outputStream } from "../streams.js";
import { defineVerb } from "../verbs.js";

const LAYER_LISTING = {
  table: "table {{.ID}}\t{{.DiffID}}\t{{.Parent}}\t{{.Depth}}\t{{.Size}}\t{{.Refs}}",
  headers: { ID: "LAYER ID", DiffID: "DIFF ID", Parent: "PARENT", Depth: "DEPTH", Size: "SIZE", Refs: "REFS" },
  api: (l: LayerSummary) => ({
    chainID: l.chainID,
    diffID: l.diffID,
    parent: l.parent,
    depth: l.depth,
    size: l.size,
    refs: l.refs,
  }),
  fields: (l: LayerSummary) => ({
    ID: shortID(l.chainID),
    DiffID: shortID(l.diffID),
    Parent: shortID(l.parent) || "-",
    Depth: l.depth,
    Size: humanSize(l.size),
    Refs: l.refs.length,
  }),
};

/** Adds `strata layer ...`. */
export function layerCommands(program: Command): void {
  const layer = defineVerb(program, "layer");

  layer
    .command("apply")
    .description("Apply a layer tar (any compression) and print its chainID")
    .argument("<file>", 'the layer tar, or "-" for stdin')
    .option("--parent <layer>", "parent layer (chainID, prefix, or image)")
    .option("-q, --quiet", "no progress")
    .action(async (file: string, o: { parent?: string; quiet?: boolean }, cmd: Command) => {
      // Opened before the store, so a missing file or a directory fails at once with one line.
      const input = await openInput(file, "apply the layer");
      await withStore(cmd, async (store, g) => {
        const progress = byteProgress(progressMode({ ...o, json: g.json }), "Applying", input.size);
        let seen = 0;
        input.stream.on("data", (c: Buffer) => progress.update((seen += c.length)));
        try {
          const info = await store.layers.apply(input.stream, o.parent);
          progress.stop(true);
          print(g.json ? jsonDocument({ chainID: info.chainID, diffID: info.diffID, size: info.size }) : info.chainID);
        } finally {
          progress.stop();
        }
      });
    });

  layer
    .command("ls")
    .description("List layers")
    .option("-q, --quiet", "only chainIDs")
    .option("--format <format>", "json, table, or a Go template ({{.ID}} {{.DiffID}} {{.Parent}} {{.Size}} ...)")
    .action(async (o: { quiet?: boolean; format?: string }, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        const layers = await store.layers.list();
        print(...renderListing(layers, { ...o, json: g.json }, { ...LAYER_LISTING, quiet: "{{.ID}}" }));
      });
    });

  layer
    .command("export")
    .description("Write a layer's exact original tar (to stdout without -o)")
    .argument("<layer>", "chainID, prefix, or image")
    .option("-o, --output <file>", "write to a file instead of stdout")
    .action(async (ref: string, o: { output?: string }, cmd: Command) => {
      await withStore(cmd, async (store) => {
        const out = await outputStream(o.output, "export the layer");
        await out.write(await store.layers.tar(ref));
      });
    });

  layer
    .command("rm")
    .description("Remove layers applied with `layer apply` (refused while anything else uses them)")
    .argument("<layer...>", "chainIDs, prefixes, or images")
    .action(async (refs: string[], _o: unknown, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        const deleted: string[] = [];
        for (const ref of refs) deleted.push(...(await store.layers.remove(ref)));
        if (g.json) print(jsonDocument(deleted.map((d) => ({ Deleted: d }))));
        else for (const d of deleted) print(`Deleted: ${d}`);
      });
    });
}
