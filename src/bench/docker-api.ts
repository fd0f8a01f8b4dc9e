/**
 * A minimal Docker Engine API client over a unix socket (API 1.41, dockerd
 * 20.10). The bench talks to the API rather than the docker CLI so that the
 * figures are dockerd's work, not a CLI process start per call.
 *
 * @module
 */
import { createReadStream } from "node:fs";
import { request } from "node:http";

/** An HTTP call to the daemon; resolves with the parsed JSON body (or undefined when empty). */
export function dockerCall(
  socket: string,
  method: string,
  path: string,
  body?: unknown,
  tarFile?: string,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (tarFile) headers["content-type"] = "application/x-tar";
    else if (body !== undefined) headers["content-type"] = "application/json";
    const req = request({ socketPath: socket, method, path: `/v1.41${path}`, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        if ((res.statusCode ?? 500) >= 400) {
          reject(new Error(`docker ${method} ${path}: ${res.statusCode} ${text.trim().slice(0, 300)}`));
          return;
        }
        // /images/load streams JSON lines; an error inside them is still a failure.
        const err = /"error(?:Detail)?":\s*"([^"]+)"/.exec(text);
        if (err) {
          reject(new Error(`docker ${method} ${path}: ${err[1]}`));
          return;
        }
        try {
          resolve(text && !path.startsWith("/images/load") ? JSON.parse(text) : text);
        } catch {
          resolve(text);
        }
      });
    });
    req.on("error", reject);
    if (tarFile) createReadStream(tarFile).on("error", reject).pipe(req);
    else req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
