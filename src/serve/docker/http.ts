/**
 * Docker's graphdriver plugin protocol on the wire: HTTP/1.1 over a unix
 * socket, `POST /<Method>`, JSON in and out (Docker's plugin client, moby
 * `pkg/plugins` and `daemon/graphdriver/proxy.go`, v20.10):
 *
 * - `Plugin.Activate` → `{"Implements": ["GraphDriver"]}`;
 * - `GraphDriver.<Call>` with a JSON body `{"ID", "Parent", "MountLabel",
 *   "StorageOpt"}` (Init: `{"Home", "Opts", "UIDMaps", "GIDMaps"}`), answered
 *   with `{"Err", "Dir", "Exists", "Status", "Changes", "Size", "Metadata",
 *   "Capabilities"}` (only the fields the call fills);
 * - `GraphDriver.Diff` answers with the raw tar; `GraphDriver.ApplyDiff?id=&parent=`
 *   takes the raw tar as its body.
 *
 * Failures answer `{"Err": "<message>"}` with a status that fits the error's
 * class (400 bad input, 404 not found, 409 state, 413 too large, 500 other);
 * dockerd shows the message. Request bodies are hostile: JSON bodies are
 * capped at {@link MAX_JSON_BODY} and checked field by field, tars are
 * streamed with backpressure (the socket is read only as fast as the layer
 * is written), and a request whose body is not read to its end gets
 * `Connection: close` so that nothing reads it after the answer.
 *
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { pipeline } from "node:stream";
import {
  AlreadyExistsError,
  BreakoutError,
  DigestMismatchError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  StrataError,
} from "../../errors.js";
import type { Change } from "../../diff/index.js";
import type { Logger } from "../log.js";
import type { DockerPlugin } from "./plugin.js";

/** Largest JSON request accepted (dockerd's are a few hundred bytes). */
export const MAX_JSON_BODY = 64 * 1024;

const JSON_TYPE = "application/vnd.docker.plugins.v1+json";

/** A request that is not the protocol (method, path, body). */
class ProtocolError extends StrataError {
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super(code, message);
    this.status = status;
  }
}

/** The HTTP status for an error from the store or the driver. */
export function statusOf(err: unknown): number {
  if (err instanceof ProtocolError) return err.status;
  if (err instanceof InvalidArgumentError || err instanceof BreakoutError || err instanceof DigestMismatchError)
    return 400;
  if (err instanceof StrataError && err.code.startsWith("ERR_TAR")) return 400;
  if (err instanceof NotFoundError) return 404;
  if (err instanceof AlreadyExistsError || err instanceof FailedPreconditionError) return 409;
  return 500;
}

/** Reads a JSON body of at most {@link MAX_JSON_BODY} bytes; `{}` when empty. */
async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > MAX_JSON_BODY) throw tooLarge();
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_JSON_BODY) throw tooLarge();
    parts.push(chunk as Buffer);
  }
  const text = Buffer.concat(parts).toString("utf8").trim();
  if (text === "" || text === "null") return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ProtocolError(
      400,
      "ERR_INVALID_REQUEST",
      `Cannot read request: invalid JSON (${(err as Error).message})`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError(400, "ERR_INVALID_REQUEST", "Cannot read request: the body is not a JSON object");
  }
  return value as Record<string, unknown>;
}

function tooLarge(): ProtocolError {
  return new ProtocolError(413, "ERR_REQUEST_TOO_LARGE", `Cannot read request: body over ${MAX_JSON_BODY} bytes`);
}

function badField(name: string, want: string): ProtocolError {
  return new ProtocolError(400, "ERR_INVALID_REQUEST", `Cannot read request: field ${name} must be ${want}`);
}

/** A string field; absent (Go's omitempty) is "". */
function str(body: Record<string, unknown>, name: string): string {
  const v = body[name];
  if (v === undefined || v === null) return "";
  if (typeof v !== "string") throw badField(name, "a string");
  return v;
}

/** A string → string map (StorageOpt); absent is {}. */
function strMap(body: Record<string, unknown>, name: string): Record<string, string> {
  const v = body[name];
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw badField(name, "an object of strings");
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (typeof x !== "string") throw badField(`${name}.${k}`, "a string");
    out[k] = x;
  }
  return out;
}

/** An array field (Opts, UIDMaps); absent is []. */
function list(body: Record<string, unknown>, name: string, ofStrings: boolean): unknown[] {
  const v = body[name];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || (ofStrings && v.some((x) => typeof x !== "string")))
    throw badField(name, ofStrings ? "an array of strings" : "an array");
  return v;
}

/** Docker's change kinds: 0 modified, 1 added, 2 deleted. */
const KIND = { C: 0, A: 1, D: 2 } as const;

function wireChanges(changes: Change[]): Array<{ Path: string; Kind: number }> {
  return changes.map((c) => ({ Path: c.path, Kind: KIND[c.kind] }));
}

type JsonCall = (body: Record<string, unknown>) => Promise<Record<string, unknown>>;

function jsonCalls(p: DockerPlugin): Record<string, JsonCall> {
  return {
    "Plugin.Activate": async () => ({ Implements: ["GraphDriver"] }),
    "GraphDriver.Init": async (b) => {
      await p.init({
        home: str(b, "Home"),
        opts: list(b, "Opts", true) as string[],
        uidMaps: list(b, "UIDMaps", false),
        gidMaps: list(b, "GIDMaps", false),
      });
      return {};
    },
    "GraphDriver.Capabilities": async () => ({ Capabilities: { ReproducesExactDiffs: false } }),
    "GraphDriver.Create": async (b) => {
      await p.create(str(b, "ID"), str(b, "Parent"), strMap(b, "StorageOpt"));
      return {};
    },
    "GraphDriver.CreateReadWrite": async (b) => {
      await p.createReadWrite(str(b, "ID"), str(b, "Parent"), strMap(b, "StorageOpt"));
      return {};
    },
    "GraphDriver.Remove": async (b) => {
      await p.remove(str(b, "ID"));
      return {};
    },
    "GraphDriver.Get": async (b) => ({ Dir: await p.get(str(b, "ID")) }),
    "GraphDriver.Put": async (b) => {
      await p.put(str(b, "ID"));
      return {};
    },
    "GraphDriver.Exists": async (b) => ({ Exists: await p.exists(str(b, "ID")) }),
    "GraphDriver.Status": async () => ({ Status: await p.status() }),
    "GraphDriver.GetMetadata": async (b) => ({ Metadata: await p.metadata(str(b, "ID")) }),
    "GraphDriver.Cleanup": async () => {
      await p.cleanup();
      return {};
    },
    "GraphDriver.Changes": async (b) => ({ Changes: wireChanges(await p.changes(str(b, "ID"), str(b, "Parent"))) }),
    "GraphDriver.DiffSize": async (b) => ({ Size: await p.diffSize(str(b, "ID"), str(b, "Parent")) }),
  };
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { "Content-Type": JSON_TYPE, "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

/**
 * The HTTP server of the protocol over `plugin` (not yet listening).
 * Requests run concurrently; each one's failure is answered, logged and
 * contained.
 */
export function dockerPluginServer(plugin: DockerPlugin, log: Logger): Server {
  const calls = jsonCalls(plugin);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://plugin");
    const method = url.pathname.slice(1);
    if (req.method !== "POST") {
      throw new ProtocolError(405, "ERR_INVALID_REQUEST", `Cannot serve request: method must be POST "${req.method}"`);
    }
    if (method === "GraphDriver.ApplyDiff") {
      const id = url.searchParams.get("id") ?? "";
      const parent = url.searchParams.get("parent") ?? "";
      const size = await plugin.applyDiff(id, parent, req);
      sendJson(res, 200, { Size: size });
      return;
    }
    if (method === "GraphDriver.Diff") {
      const b = await readJson(req);
      const tar = await plugin.diff(str(b, "ID"), str(b, "Parent"));
      res.writeHead(200, { "Content-Type": "application/x-tar" });
      pipeline(tar, res, (err) => {
        // Headers are out: a failure can only cut the stream, which dockerd sees as a broken tar.
        if (err && !res.destroyed) res.destroy(err);
        if (err) log.warn("diff stream cut", { id: str(b, "ID"), error: err.message });
      });
      return;
    }
    const call = calls[method];
    if (!call) throw new ProtocolError(404, "ERR_UNKNOWN_METHOD", `Cannot serve request: unknown method "${method}"`);
    sendJson(res, 200, await call(await readJson(req)));
  }

  return createServer((req, res) => {
    const started = process.hrtime.bigint();
    const path = (req.url ?? "").split("?")[0];
    handle(req, res)
      .then(() => {
        if (log.enabled("debug"))
          log.debug("request", { path, ms: Number(process.hrtime.bigint() - started) / 1e6, query: req.url });
      })
      .catch((err: unknown) => {
        const status = statusOf(err);
        const message = (err as Error).message ?? String(err);
        log.log(status >= 500 ? "error" : "warn", "request failed", { path, status, error: message });
        if (res.headersSent) {
          res.destroy();
          return;
        }
        // An unread body (a refused tar, an oversized JSON) is not drained: the connection ends.
        if (!req.readableEnded) res.setHeader("Connection", "close");
        sendJson(res, status, { Err: message });
      });
  });
}
