/**
 * The image commands of `strata`: pull, push, load, save, images, rmi, tag,
 * inspect. `main.ts` registers them with a function that opens the layer
 * store (as a {@link LayerSink}) and the image store for the chosen root.
 *
 * @module
 */
import type { Command } from "commander";
import { InvalidArgumentError } from "../errors.js";
import { LayerStore } from "../layer/index.js";
import { type GlobalOptions, openDriver } from "./context.js";
import { jsonProgress, terminalProgress } from "./image-progress.js";
import {
  type Credentials,
  dockerConfigCredentials,
  familiarName,
  ImageStore,
  inspectImage,
  type LayerSink,
  layerStoreSink,
  loadImages,
  parseLoadArg,
  parsePlatform,
  parseReference,
  type ProgressFn,
  pullImage,
  pushImage,
  releaseImageLayers,
  saveDockerArchive,
  saveOciLayout,
} from "../image/index.js";

/** What the image commands need: the stores, and a way to close them. */
export interface ImageContext {
  layers: LayerStore;
  sink: LayerSink;
  store: ImageStore;
  close(): Promise<void>;
}

/** Opens the stores for one command; `root`/`driver` come from the global options. */
export type OpenImageContext = () => Promise<ImageContext>;

/**
 * Opens the LayerStore (as the sink) and the image records under
 * `<root>/image`, from the program's global options (--root, --driver, --storage-opt).
 */
export function openFromGlobals(program: Command): OpenImageContext {
  return async () => {
    const g = program.opts<GlobalOptions>();
    const driver = await openDriver(g);
    try {
      const layers = await LayerStore.open(g.root, driver);
      const store = await ImageStore.openFor(g.root, driver.name);
      return {
        layers,
        sink: layerStoreSink(layers),
        store,
        close: async () => {
          await store.close();
          await layers.close();
          await driver.close();
        },
      };
    } catch (err) {
      await driver.close();
      throw err;
    }
  };
}

interface ProgressOpts {
  quiet?: boolean;
  json?: boolean;
}

interface AuthOpts {
  insecure?: boolean;
  username?: string;
  passwordStdin?: boolean;
  dockerConfig?: string;
}

function progressFor(o: ProgressOpts): { fn?: ProgressFn; stop(): void } {
  if (o.quiet) return { stop() {} };
  if (o.json) return { fn: jsonProgress(process.stdout), stop() {} };
  return terminalProgress(process.stderr);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
}

async function credentialsFor(registry: string, o: AuthOpts): Promise<Credentials | undefined> {
  if (o.username) {
    if (!o.passwordStdin) {
      throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", "Cannot log in: --username needs --password-stdin");
    }
    return { username: o.username, password: await readStdin() };
  }
  return dockerConfigCredentials(registry, o.dockerConfig);
}

async function withContext<T>(open: OpenImageContext, fn: (c: ImageContext) => Promise<T>): Promise<T> {
  const c = await open();
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", `Cannot use the number "${v}"`);
  return n;
};

/** Adds the image commands to `program`. */
export function registerImageCommands(
  program: Command,
  open: OpenImageContext,
  print: (s: string) => void = console.log,
): void {
  const auth = (c: Command) =>
    c
      .option("--insecure", "plain HTTP for this registry (self-signed HTTPS: set NODE_EXTRA_CA_CERTS instead)")
      .option("-u, --username <name>", "registry user name")
      .option("--password-stdin", "read the registry password from stdin")
      .option("--docker-config <file>", "Docker config.json with credentials");
  // --json may be a global option of the program already; then the subcommands read it from there.
  const globalJson = program.options.some((o) => o.long === "--json");
  const json = (c: Command, what: string) => (globalJson ? c : c.option("--json", what));
  const prog = (c: Command) => json(c.option("-q, --quiet", "no progress output"), "JSON progress events on stdout");

  prog(auth(program.command("pull <ref>").description("pull an image from a registry")))
    .option("--platform <os/arch[/variant]>", "platform to pull from a manifest list (default: the host)")
    .option("--concurrency <n>", "layers fetched at once", int, 3)
    .option(
      "--stall-timeout <seconds>",
      "retry, then fail, a download that receives nothing this long (0: never)",
      int,
      30,
    )
    .action(async (ref: string, _o: unknown, cmd: Command) => {
      const o = cmd.optsWithGlobals<
        AuthOpts & ProgressOpts & { platform?: string; concurrency: number; stallTimeout: number }
      >();
      const r = parseReference(ref);
      const credentials = await credentialsFor(r.registry, o);
      await withContext(open, async ({ sink, store }) => {
        const p = progressFor(o);
        try {
          const { image: rec } = await pullImage(ref, sink, store, {
            concurrency: o.concurrency,
            progress: p.fn,
            stallTimeoutMs: o.stallTimeout * 1000,
            insecure: o.insecure,
            credentials,
            ...(o.platform ? { platform: parsePlatform(o.platform) } : {}),
          });
          p.stop();
          if (!o.json) print(`${familiarName(r)}: ${rec.id}`);
        } finally {
          p.stop();
        }
      });
    });

  prog(auth(program.command("push <image> [target]").description("push a stored image to a registry")))
    .option("--chunk-size <bytes>", "upload in chunks of this size (0: one streamed request)", int, 0)
    .action(async (image: string, target: string | undefined, _o: unknown, cmd: Command) => {
      const o = cmd.optsWithGlobals<AuthOpts & ProgressOpts & { chunkSize: number }>();
      const r = parseReference(target ?? image);
      const credentials = await credentialsFor(r.registry, o);
      await withContext(open, async ({ sink, store }) => {
        const res = await pushImage(store, sink, image, target, {
          chunkSize: o.chunkSize,
          insecure: o.insecure,
          credentials,
          progress: o.quiet ? undefined : o.json ? jsonProgress(process.stdout) : (e) => print(`${e.id}: ${e.status}`),
        });
        if (!o.json) print(`${familiarName(r)}: digest: ${res.digest}`);
      });
    });

  prog(
    program.command("load <path>").description("load images from a docker-archive or an OCI layout (FILE|DIR[:TAG])"),
  )
    .option("-t, --tag <name>", "also tag the loaded image")
    .option("--platform <os/arch[/variant]>", "platform to take from an OCI index")
    .option("--concurrency <n>", "layers read at once", int, 3)
    .action(async (arg: string, _o: unknown, cmd: Command) => {
      const o = cmd.optsWithGlobals<ProgressOpts & { tag?: string; platform?: string; concurrency: number }>();
      const { path, tag } = await parseLoadArg(arg);
      await withContext(open, async ({ sink, store }) => {
        const p = progressFor(o);
        try {
          const recs = await loadImages(path, sink, store, {
            concurrency: o.concurrency,
            progress: p.fn,
            ...(o.tag ? { tag: o.tag } : {}),
            ...(tag ? { refName: tag } : {}),
            ...(o.platform ? { platform: parsePlatform(o.platform) } : {}),
          });
          p.stop();
          for (const r of recs)
            print(`Loaded image: ${r.repoTags.map((k) => familiarName(parseReference(k))).join(", ") || r.id}`);
        } finally {
          p.stop();
        }
      });
    });

  program
    .command("save <images...>")
    .description("save images as a docker-archive (or an OCI layout with --format oci)")
    .requiredOption("-o, --output <path>", "archive file (docker) or directory (oci)")
    .option("--format <format>", "docker | oci", "docker")
    .option("--compress <kind>", "OCI layer compression: none | gzip", "none")
    .action(async (images: string[], o: { output: string; format: string; compress: string }) => {
      if (o.format !== "docker" && o.format !== "oci") {
        throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", `Cannot save: unknown format "${o.format}"`);
      }
      if (o.compress !== "none" && o.compress !== "gzip") {
        throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", `Cannot save: unknown compression "${o.compress}"`);
      }
      await withContext(open, async ({ sink, store }) => {
        if (o.format === "docker") await saveDockerArchive(store, sink, images, o.output);
        else await saveOciLayout(store, sink, images, o.output, { compression: o.compress as "none" | "gzip" });
      });
    });

  json(program.command("images").description("list stored images"), "print JSON").action(
    async (_o: unknown, cmd: Command) => {
      const o = cmd.optsWithGlobals<{ json?: boolean }>();
      await withContext(open, async ({ store }) => {
        const list = await store.list();
        if (o.json) {
          print(JSON.stringify(list, null, 2));
          return;
        }
        print(["REPOSITORY", "TAG", "IMAGE ID", "LAYERS"].join("\t"));
        for (const rec of list) {
          const names = rec.repoTags.length ? rec.repoTags.map((k) => parseReference(k)) : [undefined];
          for (const r of names) {
            const repo = r ? familiarName({ ...r, tag: undefined }) : "<none>";
            print([repo, r?.tag ?? "<none>", rec.id.slice(7, 19), String(rec.layers.length)].join("\t"));
          }
        }
      });
    },
  );

  program
    .command("rmi <images...>")
    .description("remove images (a name of several only loses the name)")
    .option("-f, --force", "remove an image with several names by id, or one a container uses")
    .action(async (images: string[], o: { force?: boolean }) => {
      await withContext(open, async ({ layers, store }) => {
        for (const i of images) {
          const res = await store.remove(i, { force: o.force, containers: await layers.containers() });
          for (const u of res.untagged) print(`Untagged: ${u}`);
          for (const d of res.deleted) print(`Deleted: ${d}`);
          await releaseImageLayers(layers, res.unusedChainIDs);
        }
      });
    });

  program
    .command("tag <source> <target>")
    .description("give a stored image another name")
    .action(async (source: string, target: string) => {
      await withContext(open, ({ store }) => store.tag(source, target));
    });

  program
    .command("inspect <image>")
    .description("show an image: config, layers with diffIDs, chainIDs and sizes")
    .action(async (image: string) => {
      await withContext(open, async ({ layers, store }) =>
        print(JSON.stringify([await inspectImage(store, image, layers)], null, 4)),
      );
    });
}
