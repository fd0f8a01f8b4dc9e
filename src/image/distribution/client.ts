/**
 * A client of the Distribution HTTP API v2 (OCI distribution spec): one
 * registry, several repositories. It answers 401 challenges (bearer tokens
 * per scope, or basic auth), retries with exponential backoff on 5xx, 429
 * and connection failures, resumes interrupted blob downloads with Range
 * requests, and verifies every blob and manifest against its digest.
 *
 * Plain HTTP is used for localhost and 127.0.0.0/8, or everywhere with
 * `insecure`; otherwise HTTPS.
 *
 * @module
 */
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { pipeline } from "node:stream";
import { NotFoundError, StrataError } from "../../errors.js";
import { DigestMismatchError, DigestStream, sha256 } from "../spec/digest.js";
import { MAX_MANIFEST_BYTES } from "../spec/limits.js";
import { apiHost, isLocalRegistry } from "../spec/reference.js";
import { basicAuth, type Challenge, type Credentials, fetchToken, parseChallenge } from "./auth.js";
import { RegistryError } from "./errors.js";
import { type HttpResponse, httpRequest, MAX_ERROR_BODY_BYTES } from "./http.js";
import { DEFAULT_MIN_BYTES_PER_SECOND, DEFAULT_STALL_TIMEOUT_MS, TransferGuard } from "./stall.js";

/** Options of {@link RegistryClient}. */
export interface ClientOptions {
  /** Use plain HTTP. Always so for localhost/127.0.0.1. */
  insecure?: boolean;
  credentials?: Credentials;
  /** Attempts per request on 5xx, 429 and connection errors. @default 5 */
  attempts?: number;
  /** First backoff delay in ms, doubled per attempt. @default 200 */
  backoffMs?: number;
  /**
   * A download (GET/HEAD) that receives nothing for this long is aborted with
   * ERR_REGISTRY_STALLED and retried like a broken connection (blobs resume
   * with Range); after `attempts` the pull fails with that error. 0 turns it off.
   * @default 30000
   */
  stallTimeoutMs?: number;
  /**
   * A download that receives fewer bytes than this per second, averaged over
   * each `stallTimeoutMs` period, is aborted with ERR_REGISTRY_TOO_SLOW and
   * retried the same way. 0 turns it off.
   * @default 1024
   */
  minBytesPerSecond?: number;
}

/** A fetched manifest: its exact bytes, media type and digest. */
export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

export { RegistryError };

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/** True for errors worth a retry: resets, refused connections, aborted sockets, stalls. */
function transient(err: unknown): boolean {
  if (err instanceof RegistryError)
    return RETRY_STATUS.has(err.status) || err.code === "ERR_REGISTRY_STALLED" || err.code === "ERR_REGISTRY_TOO_SLOW";
  if (err instanceof StrataError) return false;
  if (err instanceof Error && err.name === "AbortError") return false;
  return err instanceof Error;
}

/** Request options of {@link RegistryClient.request}. */
export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | ReadableStream<Uint8Array>;
  /** Auth scopes this request needs ("repository:x/y:pull"). */
  scopes: string[];
  signal?: AbortSignal;
  /** Don't retry (streamed bodies cannot be replayed). */
  once?: boolean;
}

/** A Distribution API client for one registry. */
export class RegistryClient {
  readonly registry: string;
  readonly base: string;
  #opts: ClientOptions;
  #tokens = new Map<string, string>();
  #challenge: Challenge | undefined;
  /** The transfer guard of each download response, for its body reader. */
  #stalls = new WeakMap<HttpResponse, TransferGuard>();

  constructor(registry: string, opts: ClientOptions = {}) {
    this.registry = registry;
    this.#opts = opts;
    const scheme = opts.insecure || isLocalRegistry(registry) ? "http" : "https";
    this.base = `${scheme}://${apiHost(registry)}`;
  }

  #authHeader(scopes: string[]): string | undefined {
    if (!this.#challenge) return undefined;
    if (this.#challenge.scheme === "basic")
      return this.#opts.credentials ? basicAuth(this.#opts.credentials) : undefined;
    const t = this.#tokens.get(scopes.join(" "));
    return t ? `Bearer ${t}` : undefined;
  }

  async #authenticate(res: HttpResponse, scopes: string[]): Promise<boolean> {
    const ch = parseChallenge(res.headers.get("www-authenticate") ?? "");
    if (!ch) return false;
    this.#challenge = ch;
    if (ch.scheme === "basic") return this.#opts.credentials !== undefined;
    if (ch.scheme !== "bearer") return false;
    this.#tokens.set(scopes.join(" "), await fetchToken(ch, scopes, this.#opts.credentials));
    return true;
  }

  /**
   * One API request with auth and retries. Returns any response with a status
   * below 400 (and 404, for the caller to interpret).
   * @throws RegistryError: ERR_REGISTRY_AUTH (401/403), ERR_REGISTRY (others), ERR_REGISTRY_UNREACHABLE
   */
  async request(path: string, o: RequestOptions): Promise<HttpResponse> {
    const url = path.startsWith("http") ? path : `${this.base}${path}`;
    const attempts = o.once ? 1 : (this.#opts.attempts ?? 5);
    let lastErr: unknown;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await sleep((this.#opts.backoffMs ?? 200) * 2 ** (attempt - 1), undefined, { signal: o.signal });
      // Downloads only: an upload may legitimately take long before the answer starts.
      const stallMs = this.#opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
      const minRate = this.#opts.minBytesPerSecond ?? DEFAULT_MIN_BYTES_PER_SECOND;
      const stall =
        o.body === undefined && stallMs > 0 ? new TransferGuard(stallMs, url, o.signal, minRate) : undefined;
      try {
        let authed = false;
        for (;;) {
          const headers: Record<string, string> = { ...o.headers };
          const auth = this.#authHeader(o.scopes);
          if (auth) headers.authorization = auth;
          const res = await httpRequest(url, {
            method: o.method ?? "GET",
            headers,
            body: o.body,
            signal: stall?.signal ?? o.signal,
          }).catch((err: unknown) => {
            throw stall?.stalled ?? err;
          });
          stall?.touch();
          if (res.status === 401 && !authed && (o.body === undefined || Buffer.isBuffer(o.body))) {
            authed = true;
            await res.body.cancel();
            if (await this.#authenticate(res, o.scopes)) continue;
          }
          if (res.status < 400 || res.status === 404) {
            if (stall) {
              this.#stalls.set(res, stall);
              const cancel = res.body.cancel.bind(res.body);
              res.body.cancel = async () => {
                stall.clear();
                await cancel();
              };
            }
            return res;
          }
          // An error body is only shown: at most 64 KiB of it is read, whatever the registry sends.
          const text = (await res.text(MAX_ERROR_BODY_BYTES).catch(() => "")).slice(0, 300).replace(/\s+/g, " ");
          stall?.clear();
          const code = res.status === 401 || res.status === 403 ? "ERR_REGISTRY_AUTH" : "ERR_REGISTRY";
          throw new RegistryError(code, res.status, `Cannot ${o.method ?? "GET"} ${url}: HTTP ${res.status} ${text}`);
        }
      } catch (err) {
        stall?.clear();
        lastErr = stall?.stalled ?? err;
        if (!transient(lastErr) || o.signal?.aborted) throw wrapNetwork(lastErr, url);
      }
    }
    throw wrapNetwork(lastErr, url);
  }

  /**
   * The chunks of a response body, each pushing back its transfer guard
   * (paused while the consumer holds a chunk); a stall or a trickle ends the
   * iteration with ERR_REGISTRY_STALLED or ERR_REGISTRY_TOO_SLOW.
   */
  async *body(res: HttpResponse): AsyncGenerator<Buffer> {
    const stall = this.#stalls.get(res);
    try {
      for await (const c of res.body) {
        stall?.touch(c.length);
        // While the consumer works on the chunk the download waits on it, not on the registry.
        stall?.pause();
        yield c;
        stall?.resume();
      }
    } catch (err) {
      throw stall?.stalled ?? err;
    } finally {
      stall?.clear();
    }
  }

  /**
   * Fetches a manifest by tag or digest, verified: against the digest when
   * asked by digest, else against Docker-Content-Digest when the registry sends it.
   * @throws ERR_MANIFEST_NOT_FOUND; ERR_DIGEST_MISMATCH
   */
  async manifest(repo: string, ref: string, accept: string[]): Promise<FetchedManifest> {
    const res = await this.request(`/v2/${repo}/manifests/${ref}`, {
      headers: { accept: accept.join(", ") },
      scopes: [`repository:${repo}:pull`],
    });
    if (res.status === 404) {
      throw new NotFoundError(
        "ERR_MANIFEST_NOT_FOUND",
        `Cannot pull: manifest unknown "${this.registry}/${repo}:${ref}"`,
      );
    }
    const bytes = await this.#readCapped(res, MAX_MANIFEST_BYTES, "ERR_MANIFEST_TOO_LARGE", `${repo}:${ref}`);
    const digest = sha256(bytes);
    const want = ref.startsWith("sha256:") ? ref : res.headers.get("docker-content-digest");
    if (want && want.startsWith("sha256:") && want !== digest)
      throw DigestMismatchError.of(`manifest ${repo}:${ref}`, want, digest);
    const mediaType = (res.headers.get("content-type") ?? "").split(";")[0].trim();
    return { bytes, mediaType, digest };
  }

  /**
   * A body read whole, refused with `code` beyond `max` bytes: by its
   * Content-Length before a byte is read, else as soon as more arrives.
   */
  async #readCapped(res: HttpResponse, max: number, code: string, what: string): Promise<Buffer> {
    const tooLarge = (n: string) =>
      new RegistryError(
        code,
        res.status,
        `Cannot read the registry's answer: ${n} bytes, at most ${max} allowed "${what}"`,
      );
    const declared = Number(res.headers.get("content-length") ?? NaN);
    if (declared > max) {
      await res.body.cancel();
      throw tooLarge(String(declared));
    }
    const chunks: Buffer[] = [];
    let have = 0;
    for await (const c of this.body(res)) {
      have += c.length;
      if (have > max) {
        await res.body.cancel();
        throw tooLarge(`more than ${max}`);
      }
      chunks.push(c);
    }
    return Buffer.concat(chunks, have);
  }

  /**
   * A small blob (a config) read whole and verified: it must have exactly
   * `size` bytes (the descriptor's), read no further than that.
   * @throws ERR_DIGEST_MISMATCH (through the stream) beyond `size` bytes or on other bytes
   */
  async blob(repo: string, digest: string, size: number, signal?: AbortSignal): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of this.blobStream(repo, digest, size, signal)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  /**
   * A blob as a stream that fails (not ends) on a digest or size mismatch.
   * Interrupted transfers resume from the last byte received with a Range
   * request (or skip what was already received when the server ignores Range).
   * @throws ERR_BLOB_NOT_FOUND; ERR_DIGEST_MISMATCH (through the stream)
   */
  blobStream(repo: string, digest: string, size?: number, signal?: AbortSignal): Readable {
    const check = new DigestStream(`blob ${digest}`, { digest, ...(size !== undefined ? { size } : {}) });
    const self = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      let offset = 0;
      const attempts = self.#opts.attempts ?? 5;
      for (let failures = 0; ;) {
        const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
        const res = await self.request(`/v2/${repo}/blobs/${digest}`, {
          headers,
          scopes: [`repository:${repo}:pull`],
          signal,
        });
        if (res.status === 404) {
          throw new NotFoundError(
            "ERR_BLOB_NOT_FOUND",
            `Cannot pull: blob unknown "${self.registry}/${repo}@${digest}"`,
          );
        }
        let skip = offset > 0 && res.status !== 206 ? offset : 0;
        try {
          for await (let b of self.body(res)) {
            if (skip > 0) {
              const n = Math.min(skip, b.length);
              skip -= n;
              b = b.subarray(n);
              if (b.length === 0) continue;
            }
            offset += b.length;
            yield b;
          }
          return;
        } catch (err) {
          if (signal?.aborted || ++failures >= attempts)
            throw wrapNetwork(err, `${self.base}/v2/${repo}/blobs/${digest}`);
          await sleep((self.#opts.backoffMs ?? 200) * 2 ** (failures - 1));
        }
      }
    }
    const src = Readable.from(chunks(), { objectMode: false, highWaterMark: 1 << 20 });
    // pipeline, not pipe: when the check fails (too many bytes, wrong bytes) the download stops too.
    return pipeline(src, check, () => {});
  }

  /** The size of a blob when the repository has it, else undefined. */
  async blobSize(repo: string, digest: string, scopes = [`repository:${repo}:pull`]): Promise<number | undefined> {
    const res = await this.request(`/v2/${repo}/blobs/${digest}`, { method: "HEAD", scopes });
    await res.body.cancel();
    if (res.status === 404) return undefined;
    return Number(res.headers.get("content-length") ?? -1);
  }
}

function wrapNetwork(err: unknown, url: string): unknown {
  if (err instanceof StrataError || (err instanceof Error && err.name === "AbortError")) return err;
  // node:http throws the socket error itself (code ECONNREFUSED, ECONNRESET…); an error that wraps one carries it as `cause`.
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const why = e?.cause?.code ?? e?.cause?.message ?? e?.code ?? e?.message ?? String(err);
  return new RegistryError("ERR_REGISTRY_UNREACHABLE", 0, `Cannot reach the registry: ${why} "${url}"`, { cause: err });
}
