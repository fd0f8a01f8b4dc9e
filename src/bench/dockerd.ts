/**
 * A private dockerd (Docker 20.10 from Debian) for one timed run: its
 * data-root on the run's fresh filesystem, its own exec-root, socket and
 * pidfile under /run with a unique name, no networking; stopped by its own
 * pid. It never touches a system dockerd or the shared peer dockerd.
 *
 * Driven through the Engine API ({@link PrivateDockerd.api}) where the figure
 * should be dockerd's work, or through the docker CLI
 * ({@link PrivateDockerd.cli}) where the comparison is of whole commands.
 *
 * @module
 */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { dockerCall } from "./docker-api.js";
import { Daemon, executable, unmountUnder } from "./exec.js";

/** Where dockerd and the docker CLI are installed (Debian package docker.io). */
export const DOCKERD = "/usr/sbin/dockerd";
/** The docker CLI of the same version (a newer one elsewhere on PATH may not talk to 20.10 the same way). */
export const DOCKER_CLI = "/usr/bin/docker";

let started = 0;

/** Why a private dockerd cannot run here, or undefined. */
export async function dockerdMissing(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return "dockerd needs root";
  if (!(await executable(DOCKERD))) return `${DOCKERD} is not installed (Debian package docker.io)`;
  return undefined;
}

/** A running private dockerd. */
export class PrivateDockerd {
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly socket: string;
  readonly #daemon: Daemon;

  private constructor(dataRoot: string, execRoot: string, daemon: Daemon) {
    this.dataRoot = dataRoot;
    this.execRoot = execRoot;
    this.socket = `${execRoot}.sock`;
    this.#daemon = daemon;
  }

  /** dockerd's pid (its CPU, and its children's, is the work it does for a command). */
  get pid(): number {
    return this.#daemon.child.pid!;
  }

  /**
   * Starts dockerd with `dataRoot` (created if missing) and waits until its
   * API answers. Its log goes to `logFile`.
   * @param storageDriver dockerd's graph driver @default "overlay2"
   */
  static async start(dataRoot: string, logFile: string, storageDriver = "overlay2"): Promise<PrivateDockerd> {
    const execRoot = `/run/strata-bench-docker-${process.pid}-${++started}`;
    await mkdir(dataRoot, { recursive: true });
    await mkdir(execRoot, { recursive: true });
    const args = [
      "--iptables=false",
      "--ip-masq=false",
      "--bridge=none",
      "--ip-forward=false",
      `--storage-driver=${storageDriver}`,
      "--data-root",
      dataRoot,
      "--exec-root",
      execRoot,
      "--host",
      `unix://${execRoot}.sock`,
      "--pidfile",
      join(execRoot, "dockerd.pid"),
    ];
    const daemon = await Daemon.start("dockerd", DOCKERD, args, logFile);
    const d = new PrivateDockerd(dataRoot, execRoot, daemon);
    try {
      await daemon.waitReady(async () => !!(await d.api("GET", "/version")), 60_000, logFile);
    } catch (err) {
      await d.stop();
      throw err;
    }
    return d;
  }

  /** An Engine API call (API 1.41); resolves with the parsed JSON answer. */
  api(method: string, path: string, body?: unknown, tarFile?: string): Promise<unknown> {
    return dockerCall(this.socket, method, path, body, tarFile);
  }

  /** The docker CLI command line for `args` against this daemon, for timing as a whole command. */
  cli(...args: string[]): [string, string[]] {
    return [DOCKER_CLI, ["-H", `unix://${this.socket}`, ...args]];
  }

  /** Stops dockerd by its pid, unmounts what it left under its roots and removes its exec-root and socket. */
  async stop(): Promise<void> {
    await this.#daemon.stop();
    await unmountUnder(this.dataRoot);
    await unmountUnder(this.execRoot);
    await rm(this.execRoot, { recursive: true, force: true });
    await rm(this.socket, { force: true });
  }
}
