/**
 * `strata create|mount|unmount|rm|ps|diff|commit|export`: containers, as
 * the docker verbs of the same names treat their filesystems.
 *
 * @module
 */
import type { Command } from "commander";
import type { ContainerSummary, Store } from "../../store/index.js";
import { collect, print, withStore } from "../context.js";
import { UsageError } from "../errors.js";
import { createdAt, createdSince, jsonDocument, renderListing, shortID, unixSeconds } from "../output.js";
import { outputStream } from "../streams.js";
import { defineVerb } from "../verbs.js";

/** A container row with the image name it shows. */
interface PsRow extends ContainerSummary {
  image: string;
}

const PS_LISTING = {
  table: "table {{.ID}}\t{{.Image}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
  headers: {
    ID: "CONTAINER ID",
    Image: "IMAGE",
    CreatedAt: "CREATED AT",
    RunningFor: "CREATED",
    Status: "STATUS",
    State: "STATE",
    Names: "NAMES",
    Mounts: "MOUNTS",
  },
  api: (c: PsRow) => ({
    Id: c.id,
    Names: [c.name],
    Image: c.image,
    ImageID: c.layer,
    Created: unixSeconds(c.created),
    State: c.mounts > 0 ? "mounted" : "created",
    Mounts: c.mounts,
  }),
  fields: (c: PsRow) => ({
    ID: shortID(c.id),
    Image: c.image,
    CreatedAt: createdAt(c.created),
    RunningFor: createdSince(c.created),
    Status: c.mounts > 0 ? `Mounted (${c.mounts})` : "Created",
    State: c.mounts > 0 ? "mounted" : "created",
    Names: c.name,
    Mounts: String(c.mounts),
  }),
};

/** The name docker would show in IMAGE: the image whose top layer the container is on, else the layer. */
async function imageNames(store: Store): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  for (const i of await store.images.list()) {
    const top = i.layers.at(-1);
    if (top && !names.has(top)) names.set(top, i.repoTags[0] ?? shortID(i.id));
  }
  return names;
}

/** Adds the container commands. */
export function containerCommands(program: Command): void {
  defineVerb(program, "create")
    .option("--no-init", "leave out the init layer (/etc/hosts, /etc/resolv.conf, ...)")
    .option("--storage-opt <key=value>", "per-container driver option, e.g. size=10G (repeatable)", collect, [])
    .action(
      async (name: string, image: string | undefined, o: { init: boolean; storageOpt: string[] }, cmd: Command) => {
        const storageOpt: Record<string, string> = {};
        for (const kv of o.storageOpt) {
          const i = kv.indexOf("=");
          if (i <= 0) throw new UsageError(`Cannot parse storage option: expected key=value "${kv}"`);
          storageOpt[kv.slice(0, i)] = kv.slice(i + 1);
        }
        await withStore(cmd, async (store, g) => {
          const rec = await store.containers.create(name, image, { init: o.init, storageOpt });
          print(g.json ? jsonDocument({ Id: rec.mountID, Name: rec.name }) : rec.mountID);
        });
      },
    );

  defineVerb(program, "mount").action(async (ref: string, _o: unknown, cmd: Command) => {
    await withStore(cmd, async (store, g) => {
      const path = await store.containers.mount(ref);
      print(g.json ? jsonDocument({ Path: path }) : path);
    });
  });

  defineVerb(program, "unmount").action(async (refs: string[], _o: unknown, cmd: Command) => {
    await withStore(cmd, async (store) => {
      for (const r of refs) await store.containers.unmount(r);
    });
  });

  defineVerb(program, "rm")
    .option("-f, --force", "unmount first if mounted")
    .action(async (refs: string[], o: { force?: boolean }, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        // Like docker rm: every container is tried; the command fails if any did.
        const removed: string[] = [];
        let failed: unknown;
        for (const r of refs) {
          try {
            await store.containers.remove(r, o);
            removed.push(r);
            if (!g.json) print(r);
          } catch (err) {
            if (refs.length === 1) throw err;
            const { describeError } = await import("../errors.js");
            process.stderr.write(`strata: ${describeError(err, "remove the container")}\n`);
            failed ??= err;
          }
        }
        if (g.json) print(jsonDocument(removed));
        if (failed) process.exitCode = 1;
      });
    });

  defineVerb(program, "ps")
    .option("-q, --quiet", "only container ids")
    .option("--no-trunc", "full ids")
    .option("--format <format>", "json, table, or a Go template ({{.ID}} {{.Image}} {{.Names}} {{.Status}} ...)")
    .option("-a, --all", "accepted for docker compatibility: strata lists every container")
    .action(async (o: { quiet?: boolean; format?: string; trunc: boolean }, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        const images = await imageNames(store);
        const rows: PsRow[] = (await store.containers.list()).map((c) => ({
          ...c,
          image: c.layer ? (images.get(c.layer) ?? shortID(c.layer)) : "",
        }));
        const listing = o.trunc
          ? PS_LISTING
          : { ...PS_LISTING, fields: (c: PsRow) => ({ ...PS_LISTING.fields(c), ID: c.id }) };
        print(...renderListing(rows, { ...o, json: g.json }, listing));
      });
    });

  defineVerb(program, "diff").action(async (ref: string, _o: unknown, cmd: Command) => {
    await withStore(cmd, async (store, g) => {
      const changes = await store.containers.changes(ref);
      const kind = { C: 0, A: 1, D: 2 } as const;
      if (g.json) print(jsonDocument(changes.map((c) => ({ Path: c.path, Kind: kind[c.kind] }))));
      else for (const c of changes) print(`${c.kind} ${c.path}`);
    });
  });

  defineVerb(program, "commit")
    .option("-m, --message <text>", "commit message")
    .option("-a, --author <name>", 'author (e.g. "Jane <jane@example.com>")')
    .option("-c, --change <instruction>", "apply a Dockerfile instruction to the config (repeatable)", collect, [])
    .option("-o, --output <file>", "also write the change's layer tar here")
    .action(
      async (
        ref: string,
        tag: string | undefined,
        o: { message?: string; author?: string; change: string[]; output?: string },
        cmd: Command,
      ) => {
        await withStore(cmd, async (store, g) => {
          const { image } = await store.containers.commit(ref, {
            ...(tag ? { tag } : {}),
            ...(o.message ? { comment: o.message } : {}),
            ...(o.author ? { author: o.author } : {}),
            ...(o.output ? { output: o.output } : {}),
            changes: o.change,
          });
          print(g.json ? jsonDocument({ Id: image.id }) : image.id);
        });
      },
    );

  defineVerb(program, "export")
    .option("-o, --output <file>", "write to a file instead of stdout")
    .action(async (ref: string, o: { output?: string }, cmd: Command) => {
      const out = await outputStream(o.output, "export the container");
      await withStore(cmd, async (store) => {
        const { PassThrough } = await import("node:stream");
        const tar = new PassThrough({ highWaterMark: 1 << 20 });
        await Promise.all([store.containers.export(ref, tar), out.write(tar)]);
      });
    });
}
