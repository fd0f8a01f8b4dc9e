/**
 * Registry authentication: parsing `WWW-Authenticate` challenges, fetching
 * bearer tokens from the realm they name, and credentials from a Docker
 * `config.json` (`auths.<registry>.auth`, base64 "user:password").
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { hasCode, StrataError } from "../../errors.js";
import { DOCKER_HUB } from "../spec/reference.js";
import { httpRequest } from "./http.js";

/** A username and password (or identity token as the password with username "<token>"). */
export interface Credentials {
  username: string;
  password: string;
}

/** A parsed challenge: scheme ("bearer", "basic") and its parameters. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="…",service="…",scope="…"` (the first challenge only). */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?\s*/gy;
  const rest = m[2];
  re.lastIndex = 0;
  for (let r = re.exec(rest); r; r = re.exec(rest))
    params[r[1].toLowerCase()] = r[2] !== undefined ? r[2].replace(/\\(.)/g, "$1") : r[3];
  return { scheme: m[1].toLowerCase(), params };
}

/** The `Authorization` value for basic auth. */
export function basicAuth(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
}

/** A token answer is read up to this size (64 KiB); a token server that sends more is refused. */
const MAX_TOKEN_BYTES = 64 << 10;

/** The whole token exchange is given this long (30 s). */
const TOKEN_TIMEOUT_MS = 30_000;

/**
 * Asks a token server for a bearer token for `scopes`.
 * @throws ERR_REGISTRY_AUTH when the server refuses, is unreachable or slow, or answers without a token
 */
export async function fetchToken(challenge: Challenge, scopes: string[], creds?: Credentials): Promise<string> {
  const fail = (why: string, value: string, cause?: unknown) =>
    new StrataError("ERR_REGISTRY_AUTH", `Cannot authenticate: ${why} "${value}"`, cause ? { cause } : undefined);
  const realm = challenge.params.realm;
  if (!realm) throw new StrataError("ERR_REGISTRY_AUTH", "Cannot authenticate: bearer challenge without realm");
  let url: URL;
  try {
    url = new URL(realm);
  } catch (err) {
    throw fail("invalid realm", realm, err);
  }
  if (challenge.params.service) url.searchParams.set("service", challenge.params.service);
  for (const s of scopes) url.searchParams.append("scope", s);
  const headers: Record<string, string> = {};
  if (creds) headers.authorization = basicAuth(creds);
  let text: string;
  let status: number;
  try {
    const res = await httpRequest(url.toString(), {
      method: "GET",
      headers,
      signal: AbortSignal.timeout(TOKEN_TIMEOUT_MS),
    });
    status = res.status;
    text = await res.text(MAX_TOKEN_BYTES + 1);
  } catch (err) {
    throw fail("token server unreachable", url.origin, err);
  }
  if (status < 200 || status >= 300) throw fail(`token server answered ${status}`, url.origin);
  if (Buffer.byteLength(text) > MAX_TOKEN_BYTES) throw fail(`token answer over ${MAX_TOKEN_BYTES} bytes`, url.origin);
  let body: { token?: unknown; access_token?: unknown };
  try {
    body = JSON.parse(text) as typeof body;
  } catch (err) {
    throw fail("token answer is not JSON", url.origin, err);
  }
  const token = body?.token ?? body?.access_token;
  if (typeof token !== "string" || !token) throw fail("no token from", url.origin);
  return token;
}

/**
 * Credentials for `registry` from a Docker config.json (`$DOCKER_CONFIG/config.json`
 * or `~/.docker/config.json` unless `file` is given); undefined when none.
 */
export async function dockerConfigCredentials(registry: string, file?: string): Promise<Credentials | undefined> {
  const path = file ?? join(process.env.DOCKER_CONFIG ?? join(homedir(), ".docker"), "config.json");
  let cfg: { auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }> };
  try {
    cfg = JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    if (hasCode(err, "ENOENT")) return undefined;
    throw new StrataError("ERR_REGISTRY_AUTH", `Cannot read the Docker config: ${(err as Error).message} "${path}"`);
  }
  const keys = registry === DOCKER_HUB ? ["https://index.docker.io/v1/", "index.docker.io", "docker.io"] : [registry];
  for (const [k, v] of Object.entries(cfg.auths ?? {})) {
    const host = k.replace(/^https?:\/\//, "").replace(/\/.*$/, "");
    if (!keys.includes(k) && !keys.includes(host)) continue;
    if (v.identitytoken) return { username: "<token>", password: v.identitytoken };
    if (v.auth) {
      const s = Buffer.from(v.auth, "base64").toString("utf8");
      const i = s.indexOf(":");
      if (i > 0) return { username: s.slice(0, i), password: s.slice(i + 1) };
    }
    if (v.username && v.password) return { username: v.username, password: v.password };
  }
  return undefined;
}
