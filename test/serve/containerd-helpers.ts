/**
 * Real components for the containerd snapshotter tests: a gRPC client of the
 * snapshots service, `strata serve --containerd-snapshotter` as a child
 * process, a private containerd whose proxy plugin points at it, `ctr`, and
 * a small 3-layer image pushed to a private registry. Everything started
 * here is stopped by pid when the test ends, on failure too.
 */
import * as grpc from "@grpc/grpc-js";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { ExecutionContext } from "ava";
import { loadService } from "../../src/serve/containerd/index.js";
import { gnuTar } from "../helpers/peer.js";
import { skopeo } from "../image/peers.js";

const run = promisify(execFile);
const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

/** A promise-style client of the snapshots service. */
export interface SnapshotsClient {
  call<T = Record<string, unknown>>(method: string, req: object): Promise<T>;
  list(
    filters?: string[],
  ): Promise<Array<{ name: string; parent: string; kind: string; labels: Record<string, string> }>>;
  close(): void;
}

/** Connects to the snapshots service on `socket`. */
export function snapshotsClient(socket: string): SnapshotsClient {
  const Ctor = grpc.makeGenericClientConstructor(loadService(), "Snapshots");
  const c = new Ctor(`unix://${socket}`, grpc.credentials.createInsecure()) as unknown as Record<
    string,
    (req: object, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void
  > &
    grpc.Client;
  return {
    call: (method, req) =>
      new Promise((resolve, reject) =>
        c[method]!.call(c, req, (err, res) => (err ? reject(err) : resolve(res as never))),
      ),
    list: (filters = []) =>
      new Promise((resolve, reject) => {
        const out: Array<{ name: string; parent: string; kind: string; labels: Record<string, string> }> = [];
        const stream = (c as unknown as { List(r: object): grpc.ClientReadableStream<{ info: never[] }> }).List({
          filters,
        });
        stream.on("data", (m: { info: never[] }) => out.push(...m.info));
        stream.on("error", reject);
        stream.on("end", () => resolve(out));
      }),
    close: () => c.close(),
  };
}

/** A child process stopped by pid when the test ends. */
export interface Daemon {
  pid: number;
  /** Output so far (stdout and stderr). */
  output(): string;
  /** Sends `signal` and waits for the exit; resolves at once when it has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function daemon(t: ExecutionContext, child: ChildProcess): Daemon {
  let out = "";
  child.stdout?.on("data", (d) => (out += d));
  child.stderr?.on("data", (d) => (out += d));
  let alive = true;
  const exited = new Promise<void>((res) => child.once("exit", () => ((alive = false), res())));
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (alive) child.kill(signal);
    await exited;
  };
  const onExit = () => child.kill("SIGKILL");
  process.once("exit", onExit);
  t.teardown(async () => {
    await stop("SIGKILL");
    process.off("exit", onExit);
  });
  return { pid: child.pid!, output: () => out, stop };
}

async function waitFor(what: string, ok: () => Promise<boolean>, d: Daemon, ms = 30_000): Promise<void> {
  for (const start = Date.now(); Date.now() - start < ms;) {
    if (await ok().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} not ready after ${ms} ms: ${d.output().slice(-2000)}`);
}

/** Starts `strata serve --containerd-snapshotter socket` on `root` and waits until it answers. */
export async function startServe(
  t: ExecutionContext,
  o: { root: string; driver: string; options: string[]; socket: string },
): Promise<Daemon> {
  const args = [MAIN, "--root", o.root, "--driver", o.driver, ...o.options, "serve"];
  const child = spawn(process.execPath, [...args, "--containerd-snapshotter", o.socket], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const d = daemon(t, child);
  const client = snapshotsClient(o.socket);
  try {
    await waitFor("strata serve", async () => (await client.list(), true), d, 120_000);
  } finally {
    client.close();
  }
  return d;
}

/** A private containerd and its `ctr`. */
export interface Containerd extends Daemon {
  ctr(...args: string[]): Promise<string>;
  /** `ctr` that may fail: stdout and stderr together, and the exit code. */
  ctrTry(...args: string[]): Promise<{ code: number; out: string }>;
}

/** Starts containerd with its own root, state and socket, and the proxy plugin `strata` on `snapshotter`. */
export async function startContainerd(t: ExecutionContext, dir: string, snapshotter: string): Promise<Containerd> {
  // Socket paths stay short (108 bytes): the state lives under /run.
  const state = `/run/strata-ctd-test-${process.pid}-${randomBytes(3).toString("hex")}`;
  await mkdir(state, { recursive: true });
  const sock = join(state, "containerd.sock");
  const config = join(dir, "containerd.toml");
  await writeFile(
    config,
    [
      "version = 2",
      `root = "${join(dir, "containerd-root")}"`,
      `state = "${join(state, "state")}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.devmapper",',
      '  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.btrfs"]',
      "[grpc]",
      `  address = "${sock}"`,
      "[ttrpc]",
      `  address = "${sock}.ttrpc"`,
      "[debug]",
      `  address = "${join(state, "debug.sock")}"`,
      "[metrics]",
      '  address = ""',
      "[proxy_plugins.strata]",
      '  type = "snapshot"',
      `  address = "${snapshotter}"`,
      "",
    ].join("\n"),
  );
  const child = spawn("/usr/bin/containerd", ["--config", config], { stdio: ["ignore", "pipe", "pipe"] });
  const d = daemon(t, child);
  t.teardown(async () => {
    await killShims(sock);
    await rm(state, { recursive: true, force: true });
  });
  const ctrTry = async (...args: string[]) => {
    try {
      const r = await run("ctr", ["-a", sock, ...args], { maxBuffer: 1 << 26 });
      return { code: 0, out: r.stdout + r.stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === "number" ? e.code : 1, out: `${e.stdout ?? ""}${e.stderr ?? ""}` };
    }
  };
  const ctr = async (...args: string[]) => {
    const r = await ctrTry(...args);
    if (r.code !== 0) throw new Error(`ctr ${args.join(" ")} failed (${r.code}): ${r.out}`);
    return r.out;
  };
  await waitFor("containerd", async () => (await ctrTry("version")).code === 0, d);
  return { ...d, ctr, ctrTry };
}

/** Kills runc shims serving the containerd on `sock` (left by a test that failed mid-run). */
async function killShims(sock: string): Promise<void> {
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmd.includes("containerd-shim") && cmd.includes(sock)) process.kill(Number(pid), "SIGKILL");
  }
}

/** Whether the peers these tests need are installed; the reason when not. */
export function containerdMissing(): string | null {
  for (const bin of ["/usr/bin/containerd", "/usr/bin/ctr", "/usr/bin/docker-registry", "/usr/bin/skopeo"]) {
    if (!existsSync(bin)) return `${bin} is not installed (/work/shared/peers/install.sh installs it)`;
  }
  if (!existsSync("/usr/sbin/runc") && !existsSync("/usr/bin/runc")) return "runc is not installed";
  if (!existsSync("/tmp/peer-artifacts/tiny-rootfs.tar")) return "no /tmp/peer-artifacts (bash scripts/test-peers.sh)";
  return null;
}

function sha256(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

/**
 * Builds a 3-layer image in an OCI layout and pushes it to `registry` as
 * `<repo>:1`: busybox (the peer lab's tiny rootfs), a layer adding
 * `/etc/os-release` and deleting `/bin/arch` (a whiteout), and a layer
 * with an 8 MiB random file (so an unpack takes long enough to be caught).
 * @returns the image reference and the layers' chainIDs, bottom first
 */
export async function pushTestImage(
  dir: string,
  registry: string,
  repo: string,
): Promise<{ ref: string; chain: string[] }> {
  const layout = join(dir, "oci");
  const blobs = join(layout, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const put = async (b: Buffer) => {
    const h = sha256(b);
    await writeFile(join(blobs, h), b);
    return { digest: `sha256:${h}`, size: b.length };
  };
  const l2 = join(dir, "l2");
  await mkdir(join(l2, "etc"), { recursive: true });
  await mkdir(join(l2, "bin"), { recursive: true });
  await writeFile(join(l2, "etc", "os-release"), 'NAME="strata test"\nID=strata\n');
  await writeFile(join(l2, "bin", ".wh.arch"), "");
  const l3 = join(dir, "l3");
  await mkdir(join(l3, "data"), { recursive: true });
  await writeFile(join(l3, "data", "big.bin"), randomBytes(8 << 20));
  const tarOf = async (src: string, out: string) => {
    await gnuTar(["--numeric-owner", "--owner=0", "--group=0", "-C", src, "-cf", out, "."]);
    return readFile(out);
  };
  const layers = [
    await readFile("/tmp/peer-artifacts/tiny-rootfs.tar"),
    await tarOf(l2, join(dir, "l2.tar")),
    await tarOf(l3, join(dir, "l3.tar")),
  ];
  const layerDescs = [];
  for (const l of layers) layerDescs.push({ mediaType: "application/vnd.oci.image.layer.v1.tar", ...(await put(l)) });
  const config = await put(
    Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        config: { Cmd: ["/bin/sh"] },
        rootfs: { type: "layers", diff_ids: layers.map((l) => `sha256:${sha256(l)}`) },
      }),
    ),
  );
  const manifest = await put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
        layers: layerDescs,
      }),
    ),
  );
  await writeFile(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          annotations: { "org.opencontainers.image.ref.name": "1" },
        },
      ],
    }),
  );
  const ref = `${registry}/${repo}:1`;
  await skopeo("copy", "--dest-tls-verify=false", `oci:${layout}:1`, `docker://${ref}`);
  return { ref, chain: chainIds(layers.map((l) => `sha256:${sha256(l)}`)) };
}

/** chainIDs of layers with these diffIDs, bottom first. */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds)
    out.push(out.length === 0 ? d : `sha256:${sha256(Buffer.from(`${out[out.length - 1]} ${d}`))}`);
  return out;
}
