/**
 * `strata pull|push|load|save|import`: images in and out, as the docker
 * verbs do it. stdin and stdout work as docker's (`docker save x | strata
 * load`, `strata save x | docker load`); compressed archives load as they
 * are. Progress goes to stderr (see `../progress.ts`); stdout carries only
 * the result: the name, digest and id, or with `--json` one JSON document.
 *
 * @module
 */
import type { Command } from "commander";
import type { Credentials } from "../../credentials/index.js";
import { collect, nonNegativeInt, print, readStdinText, withStore } from "../context.js";
import { UsageError } from "../errors.js";
import { jsonDocument } from "../output.js";
import { byteProgress, layerProgress, progressMode } from "../progress.js";
import { checkOutputPath, openInput } from "../streams.js";
import { defineVerb } from "../verbs.js";

interface AuthOpts {
  insecure?: boolean;
  username?: string;
  passwordStdin?: boolean;
  dockerConfig?: string;
}

const withAuth = (c: Command) =>
  c
    .option("--insecure", "plain HTTP for this registry (self-signed HTTPS: set NODE_EXTRA_CA_CERTS instead)")
    .option("-u, --username <name>", "registry user name (default: from `strata login` / docker login)")
    .option("--password-stdin", "read the registry password from stdin")
    .option("--docker-config <file>", "Docker config.json with credentials (default ~/.docker/config.json)");

/** Credentials from the flags, else from Docker's config (auths, credsStore, credHelpers). */
async function credentialsFor(ref: string, o: AuthOpts): Promise<Credentials | undefined> {
  const { parseReference } = await import("../../image/spec/reference.js");
  const registry = parseReference(ref).registry;
  if (o.username) {
    if (!o.passwordStdin) throw new UsageError("Cannot log in: --username needs --password-stdin");
    return { username: o.username, password: await readStdinText() };
  }
  const { getCredentials } = await import("../../credentials/index.js");
  return getCredentials(registry, o.dockerConfig);
}

/** Adds the transfer commands. */
export function transferCommands(program: Command): void {
  withAuth(defineVerb(program, "pull"))
    .option("-q, --quiet", "print only the image name")
    .option("--platform <os/arch[/variant]>", "platform to pull from a manifest list (default: the host)")
    .option("--concurrency <n>", "layers fetched at once", nonNegativeInt, 3)
    .option(
      "--stall-timeout <seconds>",
      "retry, then fail, a download that receives nothing this long (0: never)",
      nonNegativeInt,
      30,
    )
    .action(
      async (
        ref: string,
        o: AuthOpts & { quiet?: boolean; platform?: string; concurrency: number; stallTimeout: number },
        cmd: Command,
      ) => {
        const credentials = await credentialsFor(ref, o);
        await withStore(cmd, async (store, g) => {
          const { familiarName, parsePlatform, parseReference } = await import("../../image/index.js");
          const name = familiarName(parseReference(ref));
          const before = await store.images.resolve(ref).catch(() => undefined);
          const p = layerProgress(progressMode({ ...o, json: g.json }), "pull");
          try {
            const { image, digest } = await store.images.pull(ref, {
              concurrency: Math.max(1, o.concurrency),
              progress: p.fn,
              stallTimeoutMs: o.stallTimeout * 1000,
              ...(o.insecure ? { insecure: true } : {}),
              ...(credentials ? { credentials } : {}),
              ...(o.platform ? { platform: parsePlatform(o.platform) } : {}),
            });
            p.stop();
            if (g.json) print(jsonDocument({ Id: image.id, Digest: digest, Name: name }));
            else if (o.quiet) print(name);
            else {
              const status = before?.id === image.id ? "Image is up to date for" : "Downloaded newer image for";
              print(`Digest: ${digest}`, `Status: ${status} ${name}`, name);
            }
          } finally {
            p.stop();
          }
        });
      },
    );

  withAuth(defineVerb(program, "push"))
    .option("-q, --quiet", "no progress")
    .option("--chunk-size <bytes>", "upload in chunks of this size (0: one streamed request)", nonNegativeInt, 0)
    .action(
      async (
        image: string,
        target: string | undefined,
        o: AuthOpts & { quiet?: boolean; chunkSize: number },
        cmd: Command,
      ) => {
        const credentials = await credentialsFor(target ?? image, o);
        await withStore(cmd, async (store, g) => {
          const { familiarName, parseReference } = await import("../../image/index.js");
          const r = parseReference(target ?? image);
          const p = layerProgress(progressMode({ ...o, json: g.json }), "push");
          try {
            const res = await store.images.push(image, target, {
              chunkSize: o.chunkSize,
              progress: p.fn,
              ...(o.insecure ? { insecure: true } : {}),
              ...(credentials ? { credentials } : {}),
            });
            p.stop();
            const tag = r.tag ?? "latest";
            if (g.json) print(jsonDocument({ Id: res.id, Name: familiarName(r), Tag: tag, Digest: res.digest }));
            else print(`${tag}: digest: ${res.digest}`);
          } finally {
            p.stop();
          }
        });
      },
    );

  defineVerb(program, "load")
    .option("-i, --input <file>", "read from this file instead of stdin")
    .option("-q, --quiet", "no progress")
    .option("-t, --tag <name>", "also tag the loaded image")
    .option("--platform <os/arch[/variant]>", "platform to take from an OCI index")
    .option("--concurrency <n>", "layers read at once", nonNegativeInt, 3)
    .action(
      async (
        arg: string | undefined,
        o: { input?: string; quiet?: boolean; tag?: string; platform?: string; concurrency: number },
        cmd: Command,
      ) => {
        if (arg !== undefined && o.input !== undefined)
          throw new UsageError("Cannot load: give a path or -i, not both");
        const { parseLoadArg, parsePlatform, familiarName, parseReference } = await import("../../image/index.js");
        const given = arg ?? o.input;
        const fromStdin = given === undefined || given === "-";
        const { path, tag } = fromStdin ? { path: "-", tag: undefined } : await parseLoadArg(given);
        const input = fromStdin ? await openInput("-", "load") : undefined;
        if (!fromStdin) {
          const { stat } = await import("node:fs/promises");
          if (!(await stat(path).catch(() => undefined)))
            throw new (await import("../../errors.js")).NotFoundError(
              "ERR_ARCHIVE_NOT_FOUND",
              `Cannot load: no such file or directory "${path}"`,
            );
        }
        await withStore(cmd, async (store, g) => {
          const mode = progressMode({ ...o, json: g.json });
          const total = input?.size ?? (await fileSize(path));
          // Shown only when the input is spooled (stdin, a compressed file).
          let spool: ReturnType<typeof byteProgress> | undefined;
          const p = layerProgress(mode, "load", total);
          try {
            const recs = await store.images.load(input?.stream ?? path, {
              concurrency: Math.max(1, o.concurrency),
              progress: p.fn,
              spoolProgress: (n, t) => (spool ??= byteProgress(mode, "Reading", total)).update(n, t),
              ...(o.tag ? { tag: o.tag } : {}),
              ...(tag ? { refName: tag } : {}),
              ...(o.platform ? { platform: parsePlatform(o.platform) } : {}),
            });
            spool?.stop(true);
            p.stop();
            const names = (r: { repoTags: string[] }) => r.repoTags.map((k) => familiarName(parseReference(k)));
            if (g.json) print(jsonDocument(recs.map((r) => ({ Id: r.id, RepoTags: names(r) }))));
            else
              for (const r of recs) {
                const n = names(r);
                print(n.length ? n.map((x) => `Loaded image: ${x}`).join("\n") : `Loaded image ID: ${r.id}`);
              }
          } finally {
            spool?.stop();
            p.stop();
          }
        });
      },
    );

  defineVerb(program, "save")
    .option("-o, --output <path>", "write to a file (docker) or directory (oci) instead of stdout")
    .option("--format <format>", "docker | oci", "docker")
    .option("--compress <kind>", "OCI layer compression: none | gzip", "none")
    .option("-q, --quiet", "no progress")
    .action(
      async (
        images: string[],
        o: { output?: string; format: string; compress: string; quiet?: boolean },
        cmd: Command,
      ) => {
        if (o.format !== "docker" && o.format !== "oci")
          throw new UsageError(`Cannot save: unknown format "${o.format}"`);
        if (o.compress !== "none" && o.compress !== "gzip")
          throw new UsageError(`Cannot save: unknown compression "${o.compress}"`);
        if (o.format === "oci" && !o.output)
          throw new UsageError("Cannot save: an OCI layout is a directory, give -o DIR");
        if (!o.output && process.stdout.isTTY)
          throw new UsageError(
            "Cannot save: refusing to write an archive to a terminal, use -o FILE or redirect stdout",
          );
        if (o.output && o.format === "docker") await checkOutputPath(o.output, "save");
        if (o.output && o.format === "oci") {
          const { stat } = await import("node:fs/promises");
          if (await stat(o.output).catch(() => undefined))
            throw new UsageError(`Cannot save: the OCI layout directory exists already "${o.output}"`);
        }
        await withStore(cmd, async (store, g) => {
          const bar = byteProgress(progressMode({ ...o, json: g.json }), "Saving");
          try {
            await store.images.save(images, o.output ?? process.stdout, {
              format: o.format as "docker" | "oci",
              compression: o.compress as "none" | "gzip",
              progress: (n, t) => bar.update(n, t),
            });
            bar.stop(true);
          } finally {
            bar.stop();
          }
        });
      },
    );

  defineVerb(program, "import")
    .option("-m, --message <text>", "commit message for the image")
    .option("-c, --change <instruction>", "apply a Dockerfile instruction to the config (repeatable)", collect, [])
    .option("-q, --quiet", "no progress")
    .action(
      async (
        file: string,
        tag: string | undefined,
        o: { message?: string; change: string[]; quiet?: boolean },
        cmd: Command,
      ) => {
        const input = file === "-" ? await openInput("-", "import") : undefined;
        if (!input) await openInput(file, "import").then((i) => i.stream.destroy());
        await withStore(cmd, async (store, g) => {
          const bar = byteProgress(progressMode({ ...o, json: g.json }), "Importing", input?.size);
          try {
            const { image } = await store.images.import(input?.stream ?? file, {
              ...(tag ? { tag } : {}),
              ...(o.message ? { comment: o.message } : {}),
              changes: o.change,
              spoolProgress: (n, t) => bar.update(n, t),
            });
            bar.stop(true);
            print(g.json ? jsonDocument({ Id: image.id }) : image.id);
          } finally {
            bar.stop();
          }
        });
      },
    );
}

async function fileSize(path: string): Promise<number | undefined> {
  const { stat } = await import("node:fs/promises");
  const st = await stat(path).catch(() => undefined);
  return st?.isFile() ? st.size : undefined;
}
