/**
 * What the commands print on stdout, as the docker CLI prints it: tables
 * laid out as Go's tabwriter does for docker (cells padded by 3, at least
 * 10 wide), `--format` templates (`table ...`, `json`, Go-template
 * subset), `-q`, and `--json` documents. Times and sizes in Docker's words.
 *
 * @module
 */
import { Template, goJson } from "./template.js";

/** Docker's tabwriter settings: minimum cell width 10, padding 3. */
const MIN_WIDTH = 10;
const PADDING = 3;

/**
 * Lays out tab-separated lines as Go's tabwriter does with docker's
 * settings: every cell but the last of a line is padded to its column's
 * width (longest cell + 3, at least 10).
 */
export function tabulate(lines: string[]): string[] {
  const rows = lines.map((l) => l.split("\t"));
  const widths: number[] = [];
  for (const r of rows)
    r.slice(0, -1).forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, width(c) + PADDING, MIN_WIDTH)));
  return rows.map((r) => r.map((c, i) => (i < r.length - 1 ? c + " ".repeat(widths[i]! - width(c)) : c)).join(""));
}

function width(s: string): number {
  return [...s].length;
}

/** What a listing command was asked to print. */
export interface ListingFormat {
  /** `--format`: "json", "table ...", or a template. */
  format?: string;
  /** `-q`: ids only. */
  quiet?: boolean;
  /** `--json` (global): one JSON document of the API objects. */
  json?: boolean;
}

/** How one command lists: its default table, the headers of its fields, and its ids for `-q`. */
export interface Listing<Row> {
  /** The default format, e.g. "table {{.Repository}}\t{{.Tag}}". */
  table: string;
  /** Column header of each template field (Docker's: ID → "IMAGE ID"). */
  headers: Record<string, string>;
  /** The template `-q` uses. @default "{{.ID}}" */
  quiet?: string;
  /** The object `--json` prints for a row (Docker's API shape). */
  api: (row: Row) => unknown;
  /** The fields a template sees (Docker's formatter context: strings). */
  fields: (row: Row) => Record<string, unknown>;
}

/**
 * Prints rows the way the docker CLI does for the same options: a table
 * (default or `--format "table ..."`), one template line per row, one JSON
 * object per line (`--format json`), ids (`-q`), or, with `--json`, one
 * JSON array of the API objects.
 * @returns the lines (without newlines)
 */
export function renderListing<Row>(rows: Row[], how: ListingFormat, listing: Listing<Row>): string[] {
  if (how.json) return [JSON.stringify(rows.map(listing.api), null, 2)];
  let format = how.quiet ? (listing.quiet ?? "{{.ID}}") : (how.format ?? listing.table);
  if (format.trim() === "json") format = "{{json .}}";
  // Docker reads \t and \n written literally in a --format argument as tab and newline.
  format = format.trim().replace(/\\t/g, "\t").replace(/\\n/g, "\n");
  const table = format.startsWith("table");
  const tmpl = new Template(table ? format.slice(5).trim() : format);
  const out = rows.map((r) => tmpl.render(listing.fields(r)));
  if (!table) return out;
  const header = tmpl.render(Object.fromEntries(Object.entries(listing.headers).map(([k, v]) => [k, v])));
  return tabulate([header, ...out]);
}

/** Prints one value as `--json` asks: pretty JSON, as the rest of strata's JSON output. */
export function jsonDocument(v: unknown): string {
  return JSON.stringify(v, null, 2);
}

/** One object per line as `--format json` prints it (Go's encoding: sorted keys, escaped <>&). */
export { goJson };

/**
 * go-units `HumanDuration`, which docker prints with " ago" in CREATED
 * columns: "Less than a second", "About a minute", "3 hours", "2 weeks".
 */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return "Less than a second";
  if (seconds === 1) return "1 second";
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes === 1) return "About a minute";
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.floor(ms / 3_600_000 + 0.5);
  if (hours === 1) return "About an hour";
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(ms / 3_600_000 / 24 / 365)} years`;
}

/** "2 hours ago" for an ISO time, "N/A" when unknown — docker's CreatedSince. */
export function createdSince(iso: string | undefined, now = Date.now()): string {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? "N/A" : `${humanDuration(now - t)} ago`;
}

/** Go's time.Time form docker prints in CreatedAt: "2024-05-01 10:11:12 +0000 UTC". */
export function createdAt(iso: string | undefined): string {
  const t = iso ? new Date(iso) : undefined;
  if (!t || Number.isNaN(t.getTime())) return "";
  return `${t.toISOString().slice(0, 19).replace("T", " ")} +0000 UTC`;
}

/** Unix seconds of an ISO time (Docker API's `Created`), 0 when unknown. */
export function unixSeconds(iso: string | undefined): number {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? 0 : Math.floor(t / 1000);
}

/** The 12-digit short form docker prints for ids: "sha256:abc…" → "abc…". */
export function shortID(id: string): string {
  return id.replace(/^sha256:/, "").slice(0, 12);
}
