/**
 * Progress of an import or export, as events, and a JSON-lines writer for
 * programs. Drawing them (bars on a terminal) is the caller's business: the
 * `strata` command does it in `src/cli/progress.ts`.
 *
 * @module
 */

/** What happens to one layer. */
export type LayerStatus =
  "waiting" | "exists" | "downloading" | "spooling" | "applying" | "pushing" | "mounted" | "done" | "failed";

/** One progress event. `current`/`total` are bytes of the blob when known. */
export interface ProgressEvent {
  layer: number;
  id: string;
  status: LayerStatus;
  current?: number;
  total?: number;
}

/** Receives progress events. */
export type ProgressFn = (e: ProgressEvent) => void;

/** A progress callback writing one JSON object per line to `out`. */
export function jsonProgress(out: NodeJS.WritableStream = process.stdout): ProgressFn {
  return (e) => {
    out.write(`${JSON.stringify(e)}\n`);
  };
}
