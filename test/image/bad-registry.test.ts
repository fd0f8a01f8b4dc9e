/**
 * Pulls through a misbehaving proxy in front of a real registry: wrong
 * bytes, cut connections, 5xx, missing blobs, unsupported media types,
 * bearer auth, a registry that dies mid-pull; and from a hostile registry
 * of our own: endless manifests, configs and error bodies, descriptors
 * without sizes, trickles. Each failure is one clear error code, reads a
 * bounded number of bytes, and leaves the stores empty.
 */
import test from "ava";
import type { ExecutionContext } from "ava";
import { Transform } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { type LayerSink, pullImage } from "../../src/image/index.js";
import { tempDir } from "../helpers/tmp.js";
import { assertEmpty, stores } from "./common.js";
import { type Fixture, writeFixtureLayout } from "./fixture.js";
import { startHostileRegistry } from "./hostile-registry.js";
import { type Action, startProxy } from "./proxy.js";
import { skopeo, startRegistry, type TestRegistry } from "./peers.js";

const fast = { attempts: 3, backoffMs: 10 };
/** Stall timeout of the stall tests: long enough that a loaded machine's pauses in a good transfer are not stalls. */
const STALL_MS = 2000;

async function setup(t: ExecutionContext): Promise<{ reg: TestRegistry; fx: Fixture; blobs: string[] }> {
  const reg = await startRegistry(t);
  const fx = await writeFixtureLayout(await tempDir(t), "v1", 3);
  await skopeo("copy", `oci:${fx.dir}:v1`, `docker://${reg.addr}/test/img:v1`, "--dest-tls-verify=false");
  const m = JSON.parse(await skopeo("inspect", "--tls-verify=false", "--raw", `docker://${reg.addr}/test/img:v1`));
  return { reg, fx, blobs: m.layers.map((l: { digest: string }) => l.digest) };
}

const isBlob = (url: string | undefined, digest: string) => (url ?? "").endsWith(`/blobs/${digest}`);
const code = (err: unknown) => (err as { code?: string }).code;

test("a blob with a flipped byte fails with ERR_DIGEST_MISMATCH and stores nothing", async (t) => {
  const { reg, blobs } = await setup(t);
  const proxy = await startProxy(t, reg.addr, (req): Action =>
    isBlob(req.url, blobs[1]) ? { kind: "corrupt", at: 100 } : { kind: "forward" },
  );
  const s = await stores(t);
  const err = await t.throwsAsync(pullImage(`${proxy.addr}/test/img:v1`, s.sink, s.store, fast));
  t.is(code(err), "ERR_DIGEST_MISMATCH");
  await assertEmpty(t, s);
});

test("a download cut mid-way resumes with a Range request and succeeds", async (t) => {
  const { reg, fx, blobs } = await setup(t);
  let cut = false;
  const proxy = await startProxy(t, reg.addr, (req): Action => {
    if (isBlob(req.url, blobs[0]) && !cut && req.method === "GET") {
      cut = true;
      return { kind: "cut", after: 300_000 };
    }
    return { kind: "forward" };
  });
  const s = await stores(t);
  const { image: rec } = await pullImage(`${proxy.addr}/test/img:v1`, s.sink, s.store, fast);
  t.is(rec.id, fx.configDigest);
  const ranged = proxy.seen.filter((r) => isBlob(r.url, blobs[0]) && r.headers.range);
  t.is(ranged.length, 1);
  t.regex(String(ranged[0].headers.range), /^bytes=\d+-$/);
});

test("5xx answers are retried with backoff", async (t) => {
  const { reg, fx } = await setup(t);
  let fails = 0;
  const proxy = await startProxy(t, reg.addr, (req): Action => {
    if ((req.url ?? "").includes("/manifests/") && fails < 2) {
      fails++;
      return { kind: "respond", status: 503, body: "busy" };
    }
    return { kind: "forward" };
  });
  const s = await stores(t);
  const { image: rec } = await pullImage(`${proxy.addr}/test/img:v1`, s.sink, s.store, fast);
  t.is(rec.id, fx.configDigest);
  t.is(fails, 2);
});

test("a missing blob fails with ERR_BLOB_NOT_FOUND and stores nothing", async (t) => {
  const { reg, blobs } = await setup(t);
  const proxy = await startProxy(t, reg.addr, (req): Action =>
    isBlob(req.url, blobs[2])
      ? { kind: "respond", status: 404, body: '{"errors":[{"code":"BLOB_UNKNOWN"}]}' }
      : { kind: "forward" },
  );
  const s = await stores(t);
  const err = await t.throwsAsync(pullImage(`${proxy.addr}/test/img:v1`, s.sink, s.store, fast));
  t.is(code(err), "ERR_BLOB_NOT_FOUND");
  await assertEmpty(t, s);
});

test("a schema 1 manifest fails with ERR_UNSUPPORTED_MEDIA_TYPE", async (t) => {
  const { reg } = await setup(t);
  const proxy = await startProxy(t, reg.addr, (req): Action =>
    (req.url ?? "").includes("/manifests/")
      ? {
          kind: "respond",
          status: 200,
          headers: { "content-type": "application/vnd.docker.distribution.manifest.v1+prettyjws" },
          body: '{"schemaVersion":1,"fsLayers":[]}',
        }
      : { kind: "forward" },
  );
  const s = await stores(t);
  const err = await t.throwsAsync(pullImage(`${proxy.addr}/test/img:v1`, s.sink, s.store, fast));
  t.is(code(err), "ERR_UNSUPPORTED_MEDIA_TYPE");
  await assertEmpty(t, s);
});

test("bearer-token auth: the challenge is answered with a token fetched with basic credentials", async (t) => {
  const { reg, fx } = await setup(t);
  const tokenRequests: Array<{ url: string; auth?: string }> = [];
  let proxyAddr = "";
  const proxy = await startProxy(t, reg.addr, (req): Action => {
    const url = req.url ?? "";
    if (url.startsWith("/token")) {
      tokenRequests.push({ url, auth: req.headers.authorization });
      const ok = req.headers.authorization === `Basic ${Buffer.from("alice:s3cret").toString("base64")}`;
      return ok
        ? { kind: "respond", status: 200, headers: { "content-type": "application/json" }, body: '{"token":"tok-123"}' }
        : { kind: "respond", status: 401, body: "bad credentials" };
    }
    if (req.headers.authorization !== "Bearer tok-123") {
      return {
        kind: "respond",
        status: 401,
        headers: {
          "www-authenticate": `Bearer realm="http://${proxyAddr}/token",service="test-registry",scope="repository:test/img:pull"`,
        },
        body: "{}",
      };
    }
    return { kind: "forward" };
  });
  proxyAddr = proxy.addr;
  const s = await stores(t);
  const denied = await t.throwsAsync(pullImage(`${proxy.addr}/test/img:v1`, s.sink, s.store, fast));
  t.is(code(denied), "ERR_REGISTRY_AUTH");
  const { image: rec } = await pullImage(`${proxy.addr}/test/img:v1`, s.sink, s.store, {
    ...fast,
    credentials: { username: "alice", password: "s3cret" },
  });
  t.is(rec.id, fx.configDigest);
  const good = tokenRequests.filter((r) => r.auth);
  t.true(good.length >= 1);
  const u = new URL(good[0].url, "http://x");
  t.is(u.searchParams.get("service"), "test-registry");
  t.is(u.searchParams.get("scope"), "repository:test/img:pull");
});

test("a registry that dies mid-pull fails with a registry error and stores nothing", async (t) => {
  const { reg, blobs } = await setup(t);
  const proxy = await startProxy(t, reg.addr, (req): Action =>
    isBlob(req.url, blobs[0]) && req.method === "GET"
      ? { kind: "cut", after: 200_000, then: () => reg.stop(true) }
      : { kind: "forward" },
  );
  const s = await stores(t);
  const err = await t.throwsAsync(pullImage(`${proxy.addr}/test/img:v1`, s.sink, s.store, fast));
  t.true(["ERR_REGISTRY", "ERR_REGISTRY_UNREACHABLE"].includes(code(err) ?? ""), String(code(err)));
  await assertEmpty(t, s);
});

test("a registry that stops sending mid-blob fails with ERR_REGISTRY_STALLED after the stall timeout, stores nothing", async (t) => {
  const { reg, blobs } = await setup(t);
  const proxy = await startProxy(t, reg.addr, (req): Action =>
    isBlob(req.url, blobs[0]) && req.method === "GET" ? { kind: "stall", after: 100_000 } : { kind: "forward" },
  );
  const s = await stores(t);
  const t0 = Date.now();
  const err = await t.throwsAsync(
    pullImage(`${proxy.addr}/test/img:v1`, s.sink, s.store, { ...fast, attempts: 2, stallTimeoutMs: STALL_MS }),
  );
  const took = Date.now() - t0;
  t.is(code(err), "ERR_REGISTRY_STALLED", err?.message);
  t.regex(
    err!.message,
    /^Cannot download from the registry: no data for 2 s "http:\/\/127\.0\.0\.1:\d+\/v2\/test\/img\/blobs\/sha256:[a-f0-9]{64}"$/,
  );
  // Two attempts, each given up after STALL_MS of silence (generous upper bound: the machine may be loaded).
  t.true(took >= 2 * STALL_MS && took < 120_000, `took ${took} ms`);
  // The second attempt resumed where the first stalled.
  const ranged = proxy.seen.filter((r) => isBlob(r.url, blobs[0]) && r.headers.range);
  t.true(ranged.length >= 1);
  await assertEmpty(t, s);
});

test("a stall once is retried, resuming with Range, and the pull succeeds", async (t) => {
  const { reg, fx, blobs } = await setup(t);
  let stalled = false;
  const proxy = await startProxy(t, reg.addr, (req): Action => {
    if (isBlob(req.url, blobs[0]) && req.method === "GET" && !stalled) {
      stalled = true;
      return { kind: "stall", after: 50_000 };
    }
    return { kind: "forward" };
  });
  const s = await stores(t);
  const { image: rec } = await pullImage(`${proxy.addr}/test/img:v1`, s.sink, s.store, {
    ...fast,
    stallTimeoutMs: STALL_MS,
  });
  t.is(rec.id, fx.configDigest);
  t.true(stalled);
  t.true(proxy.seen.filter((r) => isBlob(r.url, blobs[0]) && r.headers.range).length >= 1);
});

test("a registry that never answers the manifest request fails with ERR_REGISTRY_STALLED", async (t) => {
  const { reg } = await setup(t);
  const proxy = await startProxy(t, reg.addr, (req): Action =>
    (req.url ?? "").includes("/manifests/") ? { kind: "hang" } : { kind: "forward" },
  );
  const s = await stores(t);
  const err = await t.throwsAsync(
    pullImage(`${proxy.addr}/test/img:v1`, s.sink, s.store, { ...fast, attempts: 2, stallTimeoutMs: STALL_MS }),
  );
  t.is(code(err), "ERR_REGISTRY_STALLED", err?.message);
  t.is(proxy.seen.filter((r) => (r.url ?? "").includes("/manifests/")).length, 2);
  await assertEmpty(t, s);
});

test("basic auth: a Basic challenge is answered with the credentials", async (t) => {
  const { reg, fx } = await setup(t);
  const want = `Basic ${Buffer.from("bob:pw").toString("base64")}`;
  const proxy = await startProxy(t, reg.addr, (req): Action =>
    req.headers.authorization === want
      ? { kind: "forward" }
      : { kind: "respond", status: 401, headers: { "www-authenticate": 'Basic realm="test"' }, body: "{}" },
  );
  const s = await stores(t);
  const { image: rec } = await pullImage(`${proxy.addr}/test/img:v1`, s.sink, s.store, {
    ...fast,
    credentials: { username: "bob", password: "pw" },
  });
  t.is(rec.id, fx.configDigest);
  t.true(proxy.seen.some((r) => r.headers.authorization === want));
});

test("blob downloads follow a redirect to another origin (a CDN) and do not take the credentials along", async (t) => {
  const { reg, fx, blobs } = await setup(t);
  const want = `Basic ${Buffer.from("bob:pw").toString("base64")}`;
  const cdn = await startProxy(t, reg.addr, (): Action => ({ kind: "forward" }));
  const proxy = await startProxy(t, reg.addr, (req): Action => {
    if (req.headers.authorization !== want)
      return { kind: "respond", status: 401, headers: { "www-authenticate": 'Basic realm="test"' }, body: "{}" };
    if (req.method === "GET" && blobs.some((b) => isBlob(req.url, b)))
      return { kind: "respond", status: 307, headers: { location: `http://${cdn.addr}${req.url}` } };
    return { kind: "forward" };
  });
  const s = await stores(t);
  const { image: rec } = await pullImage(`${proxy.addr}/test/img:v1`, s.sink, s.store, {
    ...fast,
    credentials: { username: "bob", password: "pw" },
  });
  t.is(rec.id, fx.configDigest);
  const fetched = cdn.seen.filter((r) => blobs.some((b) => isBlob(r.url, b)));
  t.is(fetched.length, blobs.length);
  t.true(fetched.every((r) => r.headers.authorization === undefined));
});

// ---- A hostile registry of our own (hostile-registry.ts): nothing it sends is read without a bound. ----

/** Bytes a client may take of an endless answer before it must have stopped (the cap plus socket buffers). */
const READ_BOUND = 64 << 20;

test("a good image from the hostile registry pulls (the baseline of the tests below)", async (t) => {
  const reg = await startHostileRegistry(t);
  const s = await stores(t);
  const { image } = await pullImage(`${reg.addr}/h/img:1`, s.sink, s.store, fast);
  t.is(image.id, reg.image.configDigest);
});

test("an endless manifest fails with ERR_MANIFEST_TOO_LARGE after at most 4 MiB is read", async (t) => {
  const reg = await startHostileRegistry(t, (req, res, send) => {
    if (!(req.url ?? "").includes("/manifests/")) return false;
    res.writeHead(200, { "content-type": "application/vnd.docker.distribution.manifest.v2+json" });
    send.endless(res, Buffer.alloc(1 << 16, 0x20), 1 << 30);
    return true;
  });
  const s = await stores(t);
  const err = await t.throwsAsync(pullImage(`${reg.addr}/h/img:1`, s.sink, s.store, fast));
  t.is(code(err), "ERR_MANIFEST_TOO_LARGE", err?.message);
  t.true(reg.sent() < READ_BOUND, `the client took ${reg.sent()} bytes`);
  await assertEmpty(t, s);
});

test("a manifest whose Content-Length is over 4 MiB is refused before it is read", async (t) => {
  const reg = await startHostileRegistry(t, (req, res, send) => {
    if (!(req.url ?? "").includes("/manifests/")) return false;
    res.writeHead(200, { "content-type": "application/json", "content-length": String(1 << 30) });
    send.endless(res, Buffer.alloc(1 << 16, 0x20), 1 << 30);
    return true;
  });
  const s = await stores(t);
  const err = await t.throwsAsync(pullImage(`${reg.addr}/h/img:1`, s.sink, s.store, fast));
  t.is(code(err), "ERR_MANIFEST_TOO_LARGE", err?.message);
  t.true(reg.sent() < READ_BOUND, `the client took ${reg.sent()} bytes`);
});

test("an endless config whose descriptor says N bytes fails after N bytes, with ERR_DIGEST_MISMATCH", async (t) => {
  let configDigest = "";
  const reg = await startHostileRegistry(t, (req, res, send) => {
    if (!(req.url ?? "").endsWith(`/blobs/${configDigest}`)) return false;
    res.writeHead(200, { "content-type": "application/octet-stream" });
    send.endless(res, Buffer.alloc(1 << 16, 0x7b), 1 << 30);
    return true;
  });
  configDigest = reg.image.configDigest;
  const s = await stores(t);
  const err = await t.throwsAsync(pullImage(`${reg.addr}/h/img:1`, s.sink, s.store, fast));
  t.is(code(err), "ERR_DIGEST_MISMATCH", err?.message);
  t.regex(err!.message, new RegExp(`more than ${reg.image.config.length} bytes`));
  t.true(reg.sent() < READ_BOUND, `the client took ${reg.sent()} bytes`);
  await assertEmpty(t, s);
});

test("a config descriptor over 8 MiB is refused with ERR_BLOB_TOO_LARGE, nothing fetched", async (t) => {
  const asked: string[] = [];
  const reg = await startHostileRegistry(t, (req) => {
    asked.push(req.url ?? "");
    return false;
  });
  reg.image.manifest.config.size = 1 << 30;
  const s = await stores(t);
  const err = await t.throwsAsync(pullImage(`${reg.addr}/h/img:1`, s.sink, s.store, fast));
  t.is(code(err), "ERR_BLOB_TOO_LARGE", err?.message);
  t.false(
    asked.some((u) => u.includes("/blobs/")),
    "no blob was asked for",
  );
});

for (const [what, size] of [
  ["without a size", undefined],
  ["with size -1", -1],
  ["with a fractional size", 1.5],
] as const) {
  test(`a layer descriptor ${what} is refused with ERR_BAD_MANIFEST`, async (t) => {
    const reg = await startHostileRegistry(t);
    if (size === undefined) delete reg.image.manifest.layers[0]!.size;
    else reg.image.manifest.layers[0]!.size = size;
    const s = await stores(t);
    const err = await t.throwsAsync(pullImage(`${reg.addr}/h/img:1`, s.sink, s.store, fast));
    t.is(code(err), "ERR_BAD_MANIFEST", err?.message);
    await assertEmpty(t, s);
  });
}

test("an HTTP 500 with an endless body: each attempt reads at most 64 KiB of it, then ERR_REGISTRY", async (t) => {
  let answers = 0;
  const reg = await startHostileRegistry(t, (req, res, send) => {
    if (!(req.url ?? "").includes("/manifests/")) return false;
    answers++;
    res.writeHead(500, { "content-type": "text/plain" });
    send.endless(res, Buffer.alloc(1 << 16, 0x45), 1 << 30);
    return true;
  });
  const s = await stores(t);
  const err = await t.throwsAsync(pullImage(`${reg.addr}/h/img:1`, s.sink, s.store, fast));
  t.is(code(err), "ERR_REGISTRY", err?.message);
  t.is(answers, fast.attempts, "retried as a 5xx");
  t.true(reg.sent() < fast.attempts * READ_BOUND, `the client took ${reg.sent()} bytes`);
  t.true(err!.message.length < 1000, "the message shows only the start of the body");
});

test("a blob trickling one byte every 2 s fails with ERR_REGISTRY_TOO_SLOW in bounded time", async (t) => {
  let layerDigest = "";
  const reg = await startHostileRegistry(t, (req, res, send) => {
    if (!(req.url ?? "").endsWith(`/blobs/${layerDigest}`) || req.method !== "GET") return false;
    res.writeHead(200, { "content-type": "application/octet-stream" });
    send.trickle(res, Buffer.alloc(1 << 20, 0), 2000);
    return true;
  });
  layerDigest = reg.image.layerDigest;
  const s = await stores(t);
  const t0 = Date.now();
  // Bytes keep coming (every 2 s < the 3 s stall timeout), but far below 100 bytes/s.
  const err = await t.throwsAsync(
    pullImage(`${reg.addr}/h/img:1`, s.sink, s.store, {
      ...fast,
      attempts: 2,
      stallTimeoutMs: 3000,
      minBytesPerSecond: 100,
    }),
  );
  const took = Date.now() - t0;
  t.is(code(err), "ERR_REGISTRY_TOO_SLOW", err?.message);
  t.regex(err!.message, /^Cannot download from the registry: \d+ bytes in 3 s, less than 100 bytes\/s "http:/);
  t.true(took >= 2 * 3000 && took < 60_000, `took ${took} ms`);
  await assertEmpty(t, s);
});

test("a token server sending an endless answer fails with ERR_REGISTRY_AUTH after 64 KiB", async (t) => {
  let addr = "";
  const reg = await startHostileRegistry(t, (req, res, send) => {
    const url = req.url ?? "";
    if (url.startsWith("/token")) {
      res.writeHead(200, { "content-type": "application/json" });
      send.endless(res, Buffer.alloc(1 << 16, 0x20), 1 << 30);
      return true;
    }
    res.writeHead(401, { "www-authenticate": `Bearer realm="http://${addr}/token",service="h"` }).end();
    return true;
  });
  addr = reg.addr;
  const s = await stores(t);
  const err = await t.throwsAsync(pullImage(`${reg.addr}/h/img:1`, s.sink, s.store, fast));
  t.is(code(err), "ERR_REGISTRY_AUTH", err?.message);
  t.true(reg.sent() < READ_BOUND, `the client took ${reg.sent()} bytes`);
});

test("a slow layer store is not a slow registry: waiting on the apply counts neither as a stall nor as a trickle", async (t) => {
  // 32 MiB that does not compress: more than every buffer between the socket and the applier holds.
  const ranged: string[] = [];
  const reg = await startHostileRegistry(
    t,
    (req) => {
      if (req.headers.range) ranged.push(`${req.url} ${req.headers.range}`);
      return false;
    },
    32 << 20,
  );
  const s = await stores(t);
  let held = false;
  const slowSink: LayerSink = {
    ...s.sink,
    register: (tar, parent, diffID) => {
      // The applier stops for 5 s after the first MiB, as a busy disk would; the download backs up meanwhile.
      let seen = 0;
      const slow = new Transform({
        async transform(chunk: Buffer, _e, cb) {
          seen += chunk.length;
          if (!held && seen > 1 << 20) {
            held = true;
            await sleep(5000);
          }
          cb(null, chunk);
        },
      });
      tar.on("error", (e) => slow.destroy(e));
      return s.sink.register(tar.pipe(slow), parent, diffID);
    },
  };
  const { image } = await pullImage(`${reg.addr}/h/big:1`, slowSink, s.store, {
    ...fast,
    stallTimeoutMs: 2000,
    minBytesPerSecond: 1 << 20,
  });
  t.true(held, "the applier did stop");
  t.is(image.id, reg.image.configDigest);
  t.deepEqual(ranged, [], "the download was never given up and resumed");
});
