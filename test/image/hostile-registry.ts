/**
 * A hostile registry for tests: a small node:http server that serves one
 * valid image (a config, one gzip layer, a manifest) except where a test's
 * hook answers a request itself: endless bodies, lying sizes, trickles.
 * It counts the bytes it sends, so a test can tell that the client stopped
 * reading instead of taking everything.
 */
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { gzipSync } from "node:zlib";
import type { ExecutionContext } from "ava";
import { makeTar } from "../helpers/tar.js";

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** The image the registry serves, as the test may want to tweak it. */
export interface HostileImage {
  config: Buffer;
  configDigest: string;
  layer: Buffer;
  layerDigest: string;
  /** The manifest's JSON object (a test may change it before serving). */
  manifest: Record<string, unknown> & { config: Record<string, unknown>; layers: Array<Record<string, unknown>> };
}

/** A running hostile registry. */
export interface HostileRegistry {
  addr: string;
  image: HostileImage;
  /** Body bytes sent so far, all responses. */
  sent(): number;
}

/** What a hook may do with a request: answer it (return true) or leave it to the default. */
export type Hook = (req: IncomingMessage, res: ServerResponse, send: Senders) => boolean;

/** Ways to answer, each counting what it sends. */
export interface Senders {
  /** Writes `chunk` again and again (with backpressure) until the client goes or `limit` bytes are sent. */
  endless(res: ServerResponse, chunk: Buffer, limit?: number): void;
  /** Writes `body` one byte every `everyMs`. */
  trickle(res: ServerResponse, body: Buffer, everyMs: number): void;
}

/** Resolves when `res` can take more, or is closed. */
function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/** A small valid image: a config and one gzip layer (with `noise` random bytes in a file, to make it big). */
export async function hostileImage(noise = 0): Promise<HostileImage> {
  const tar = await makeTar([
    { name: "etc/" },
    { name: "etc/hostile", content: "served by a hostile registry\n" },
    ...(noise > 0 ? [{ name: "noise", content: randomBytes(noise) }] : []),
  ]);
  const layer = gzipSync(tar);
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Cmd: ["/bin/true"] },
      rootfs: { type: "layers", diff_ids: [sha(tar)] },
    }),
  );
  const configDigest = sha(config);
  const layerDigest = sha(layer);
  return {
    config,
    configDigest,
    layer,
    layerDigest,
    manifest: {
      schemaVersion: 2,
      mediaType: "application/vnd.docker.distribution.manifest.v2+json",
      config: {
        mediaType: "application/vnd.docker.container.image.v1+json",
        digest: configDigest,
        size: config.length,
      },
      layers: [
        { mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", digest: layerDigest, size: layer.length },
      ],
    },
  };
}

/** Starts the registry on a free port; stopped when the test ends. `hook` answers what it wants to. */
export async function startHostileRegistry(
  t: ExecutionContext,
  hook: Hook = () => false,
  noise = 0,
): Promise<HostileRegistry> {
  const image = await hostileImage(noise);
  let sent = 0;
  const write = (res: ServerResponse, b: Buffer) => {
    sent += b.length;
    return res.write(b);
  };
  const send: Senders = {
    endless(res, chunk, limit = 1 << 30) {
      let closed = false;
      res.on("close", () => (closed = true));
      void (async () => {
        for (let n = 0; !closed && n < limit; n += chunk.length) {
          if (!write(res, chunk)) await drainedOrClosed(res);
        }
        res.end();
      })();
    },
    trickle(res, body, everyMs) {
      let closed = false;
      res.on("close", () => (closed = true));
      void (async () => {
        for (let i = 0; i < body.length && !closed; i++) {
          write(res, body.subarray(i, i + 1));
          await sleep(everyMs);
        }
        res.end();
      })();
    },
  };
  const server = createServer((req, res) => {
    if (hook(req, res, send)) return;
    const url = req.url ?? "";
    const body = (b: Buffer, type: string) => {
      res.writeHead(200, { "content-type": type, "content-length": String(b.length), "docker-content-digest": sha(b) });
      if (req.method !== "HEAD") write(res, b);
      res.end();
    };
    if (url.includes("/manifests/"))
      return body(Buffer.from(JSON.stringify(image.manifest)), String(image.manifest.mediaType));
    if (url.endsWith(`/blobs/${image.configDigest}`)) return body(image.config, "application/octet-stream");
    if (url.endsWith(`/blobs/${image.layerDigest}`)) return body(image.layer, "application/octet-stream");
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return { addr: `127.0.0.1:${(server.address() as { port: number }).port}`, image, sent: () => sent };
}
