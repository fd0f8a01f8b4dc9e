/**
 * `strata create|mount|unmount|rm|ps|diff|commit`.
 *
 * @module
 */
import { createReadStream, createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import { commitContainer, withImageStore } from "../../image/index.js";
import { printTable, resolveLayer, short, withStore } from "../context.js";

export function containerCommands(program: Command): void {
  program
    .command("create <name> [image]")
    .description("create a container layer on an image or layer (none: an empty one)")
    .option("--no-init", "leave out the init layer")
    .option("--size <size>", "per-container size (drivers that support it)")
    .action(async (name: string, image: string | undefined, o: { init: boolean; size?: string }, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        const parent = image ? await resolveLayer(store, image, g.root) : "";
        const rec = await store.createRWLayer(name, parent, {
          init: o.init,
          storageOpt: o.size ? { size: o.size } : {},
        });
        // Remember the image (and its config, for a later commit) when one was named.
        if (image) await withImageStore(g.root, store.driver.name, (images) => images.bindContainer(rec, image));
        console.log(rec.name);
      });
    });

  program
    .command("mount <name>")
    .description("mount a container's tree and print its path (held until `unmount`)")
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await withStore(cmd, async (store) => console.log(await store.mount(name)));
    });

  program
    .command("unmount <name>")
    .alias("umount")
    .description("release one `mount` of a container")
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await withStore(cmd, (store) => store.unmount(name));
    });

  program
    .command("rm <name>")
    .description("remove a container layer")
    .option("-f, --force", "unmount first if mounted")
    .action(async (name: string, o: { force?: boolean }, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        await store.container(name); // the library call is a no-op for a missing name; the command says so
        await store.releaseRWLayer(name, { force: o.force });
        await withImageStore(g.root, store.driver.name, (images) => images.containers.forget(name));
        console.log(name);
      });
    });

  program
    .command("ps")
    .description("list containers")
    .action(async (_o: unknown, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        const rows = [];
        for (const c of await store.containers()) {
          rows.push({
            name: c.name,
            image: g.json ? c.parent : short(c.parent),
            mounts: await store.mounts.count(c.mountID),
            created: c.created,
            mountID: g.json ? c.mountID : short(c.mountID),
          });
        }
        printTable(g, rows, ["name", "image", "mounts", "created", "mountID"]);
      });
    });

  program
    .command("diff <name>")
    .description("list what a container changed (A/C/D, as docker diff)")
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        const changes = await store.changes(name);
        if (g.json) console.log(JSON.stringify(changes, null, 2));
        else for (const c of changes) console.log(`${c.kind} ${c.path}`);
      });
    });

  program
    .command("commit <name> [image]")
    .description("turn a container's change into a new layer (and image name), and/or a layer tar")
    .option("-o, --output <file>", "also write the layer tar here")
    .option("--no-register", "only write the tar (-o), do not store a layer")
    .action(
      async (name: string, image: string | undefined, o: { output?: string; register: boolean }, cmd: Command) => {
        await withStore(cmd, async (store, g) => {
          const rec = await store.container(name);
          if (!o.register) {
            if (!o.output) throw new Error("Cannot commit: --no-register needs -o FILE");
            await pipeline(await store.diffTar(name), createWriteStream(o.output));
            return;
          }
          // With -o the tar is written once and registered from the file, so both are the same bytes.
          let file = o.output;
          let tmp: string | undefined;
          if (!file) {
            tmp = await store.db.scratchDir("commit");
            file = join(tmp, "layer.tar");
          }
          try {
            await pipeline(await store.diffTar(name), createWriteStream(file));
            if (image) {
              // An import like pull and load: held pending, then by "image" once recorded. Docker prints the image ID.
              const tar = createReadStream(file);
              const res = await withImageStore(g.root, store.driver.name, (images) =>
                commitContainer(store, images, name, { tag: image, tar }),
              );
              console.log(res.image.id);
              return;
            }
            const info = await store.register(createReadStream(file), rec.parent, { ref: "user" });
            console.log(info.chainID);
          } finally {
            if (tmp) await rm(tmp, { recursive: true, force: true });
          }
        });
      },
    );
}
