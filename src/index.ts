/**
 * strata as a library: a layered container-image store (Docker's
 * graphdrivers and layer store) for Linux. Open a store with
 * {@link openStore}; it has three views — `images` (pull, push, load,
 * save, import, list, inspect, history, tag, remove), `containers`
 * (create, mount, diff, commit, export, remove) and `layers` (layer tars
 * applied by hand) — and whole-store `check` and `prune`. Needs root, as
 * Docker does.
 *
 * Errors are {@link StrataError}s with a stable `code` (`ERR_IMAGE_NOT_FOUND`,
 * `ERR_BREAKOUT`, ...); messages read `Cannot <operation>: <reason> "<value>"`.
 *
 * @example
 * import { openStore } from "strata";
 *
 * const store = await openStore({ root: "/var/lib/strata" });
 * try {
 *   await store.images.load("debian.tar");
 *   await store.containers.create("web", "debian:12");
 *   const path = await store.containers.mount("web");
 *   // ... change files under path ...
 *   for (const c of await store.containers.changes("web")) console.log(c.kind, c.path);
 *   const { image } = await store.containers.commit("web", { tag: "web:v2", comment: "configured" });
 *   await store.images.save([image.id], "web-v2.tar");
 *   await store.containers.unmount("web");
 * } finally {
 *   await store.close();
 * }
 *
 * @module
 */
export {
  type BytesProgress,
  type ContainerCommitOptions,
  type ContainerSummary,
  Containers,
  type CreateOptions,
  DEFAULT_ROOT,
  type HistoryEntry,
  Images,
  type ImageSummary,
  Layers,
  type LayerSummary,
  openStore,
  type OpenStoreOptions,
  type SaveOptions,
  Store,
  type StoreProblem,
  USER_REF,
} from "./store/index.js";
export {
  AlreadyExistsError,
  BreakoutError,
  DigestMismatchError,
  FailedPreconditionError,
  hasCode,
  InvalidArgumentError,
  NotFoundError,
  NotSupportedError,
  StrataError,
  SystemError,
} from "./errors.js";
export { humanSize, parseSize } from "./util/size.js";
export type { Change } from "./diff/index.js";
export type { Driver } from "./graphdriver/driver.js";
export type { ContainerRecord, LayerInfo } from "./layer/index.js";
export type {
  CommitOptions,
  CommitResult,
  ImageConfig,
  ImageInspect,
  ImageRecord,
  LoadOptions,
  ProgressEvent,
  ProgressFn,
  PullOptions,
  PushOptions,
  PushResult,
} from "./image/index.js";
export type { Credentials } from "./credentials/index.js";
