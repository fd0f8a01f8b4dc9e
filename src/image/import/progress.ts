/**
 * Progress of an import or export, as events. The image module only emits
 * them; drawing them (bars on a terminal, JSON lines) is the CLI's job.
 *
 * @module
 */

/** What happens to one layer. */
export type LayerStatus =
  "waiting" | "exists" | "downloading" | "spooling" | "applying" | "pushing" | "mounted" | "done" | "failed";

/** One progress event. `current`/`total` are bytes of the blob when known. */
export interface ProgressEvent {
  /** The layer's index in the image, bottom first. */
  layer: number;
  /** A short name for the layer (12 hex digits of a digest). */
  id: string;
  status: LayerStatus;
  current?: number;
  total?: number;
}

/** Receives progress events. */
export type ProgressFn = (e: ProgressEvent) => void;
