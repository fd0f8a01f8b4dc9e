/**
 * What every front door of `strata serve` gets, and what it gives back.
 *
 * @module
 */
import type { Driver } from "../graphdriver/driver.js";
import type { LayerStore } from "../layer/index.js";
import type { Logger } from "./log.js";

/** The daemon's one store and driver, shared by its front doors. */
export interface ServeContext {
  /** The store root (`--root`). */
  readonly root: string;
  readonly driver: Driver;
  /** The store; its `mounts` is the only way to mount and unmount a layer. */
  readonly store: LayerStore;
  readonly log: Logger;
}

/** A running front door (the Docker plugin, the containerd snapshotter). */
export interface FrontDoor {
  /** For logs: "docker-plugin", "containerd-snapshotter". */
  readonly name: string;
  /** Where it listens (a socket path). */
  readonly address: string;
  /**
   * Stops accepting connections, lets requests in flight finish (cut off
   * after `graceMs`), and releases the socket. Safe to call twice.
   */
  close(graceMs: number): Promise<void>;
}
