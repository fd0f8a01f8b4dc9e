/**
 * Registry authentication: parsing `WWW-Authenticate` challenges, fetching
 * bearer tokens from the realm they name, and credentials from Docker's
 * config (read by `src/credentials`).
 *
 * @module
 */
import { type Credentials, getCredentials } from "../../credentials/index.js";
import { StrataError } from "../../errors.js";

export type { Credentials };

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

/**
 * Asks a token server for a bearer token for `scopes`.
 * @throws ERR_REGISTRY_AUTH when the server refuses or answers without a token
 */
export async function fetchToken(challenge: Challenge, scopes: string[], creds?: Credentials): Promise<string> {
  const realm = challenge.params.realm;
  if (!realm) throw new StrataError("ERR_REGISTRY_AUTH", "Cannot authenticate: bearer challenge without realm");
  const url = new URL(realm);
  if (challenge.params.service) url.searchParams.set("service", challenge.params.service);
  for (const s of scopes) url.searchParams.append("scope", s);
  const headers: Record<string, string> = {};
  if (creds) headers.authorization = basicAuth(creds);
  let res: Response;
  try {
    res = await fetch(url, { headers });
  } catch (err) {
    throw new StrataError("ERR_REGISTRY_AUTH", `Cannot authenticate: token server unreachable "${url.origin}"`, {
      cause: err,
    });
  }
  if (!res.ok) {
    throw new StrataError(
      "ERR_REGISTRY_AUTH",
      `Cannot authenticate: token server answered ${res.status} "${url.origin}"`,
    );
  }
  const body = (await res.json()) as { token?: string; access_token?: string };
  const token = body.token ?? body.access_token;
  if (!token) throw new StrataError("ERR_REGISTRY_AUTH", `Cannot authenticate: no token from "${url.origin}"`);
  return token;
}

/**
 * Credentials for `registry` from Docker's config (`auths`, `credsStore`,
 * `credHelpers`; see `src/credentials`); undefined when none.
 */
export function dockerConfigCredentials(registry: string, file?: string): Promise<Credentials | undefined> {
  return getCredentials(registry, file);
}
