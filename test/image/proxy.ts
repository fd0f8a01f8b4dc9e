/**
 * A small HTTP proxy in front of the test registry that misbehaves on
 * purpose: it can answer a request itself, corrupt a body, cut a response
 * mid-way, or stop sending and hold the connection open, as a hook decides
 * per request.
 */
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { ExecutionContext } from "ava";

/** What to do with one request. */
export type Action =
  | { kind: "forward" }
  /** Forward, flipping the byte at `at` of the response body. */
  | { kind: "corrupt"; at: number }
  /** Forward, but destroy the connection after `after` body bytes (then call `then`). */
  | { kind: "cut"; after: number; then?: () => Promise<void> }
  /** Forward `after` body bytes, then send nothing more and keep the connection open. */
  | { kind: "stall"; after: number }
  /** Never answer (the connection stays open). */
  | { kind: "hang" }
  | { kind: "respond"; status: number; headers?: Record<string, string>; body?: string };

/** A running proxy: `addr` to use as the registry, `seen` the requests it got. */
export interface Proxy {
  addr: string;
  seen: Array<{ method: string; url: string; headers: IncomingMessage["headers"] }>;
}

/** Starts a proxy to `upstream` ("127.0.0.1:PORT"); closed when the test ends. */
export async function startProxy(
  t: ExecutionContext,
  upstream: string,
  hook: (req: IncomingMessage, n: number) => Action,
): Promise<Proxy> {
  const seen: Proxy["seen"] = [];
  let n = 0;
  const [uhost, uport] = upstream.split(":");
  const server: Server = createServer((req, res: ServerResponse) => {
    seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    const action = hook(req, n++);
    if (action.kind === "hang") return;
    if (action.kind === "respond") {
      res.writeHead(action.status, action.headers);
      res.end(action.body ?? "");
      return;
    }
    const up = httpRequest(
      { host: uhost, port: Number(uport), method: req.method, path: req.url, headers: req.headers },
      (ures) => {
        res.writeHead(ures.statusCode ?? 502, ures.headers);
        let pos = 0;
        ures.on("data", (chunk: Buffer) => {
          let c = chunk;
          if (action.kind === "corrupt" && action.at >= pos && action.at < pos + c.length) {
            c = Buffer.from(c);
            c[action.at - pos] ^= 0xff;
          }
          if (action.kind === "stall" && pos + c.length > action.after) {
            res.write(c.subarray(0, Math.max(0, action.after - pos)));
            ures.destroy();
            pos = Number.MAX_SAFE_INTEGER;
            return;
          }
          if (action.kind === "cut" && pos + c.length > action.after) {
            res.write(c.subarray(0, Math.max(0, action.after - pos)));
            ures.destroy();
            const then = action.then ?? (async () => {});
            void then().finally(() => res.socket?.destroy());
            pos = Number.MAX_SAFE_INTEGER;
            return;
          }
          pos += c.length;
          res.write(c);
        });
        ures.on("end", () => {
          if (action.kind !== "stall") res.end();
        });
      },
    );
    up.on("error", () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return { addr: `127.0.0.1:${(server.address() as { port: number }).port}`, seen };
}
