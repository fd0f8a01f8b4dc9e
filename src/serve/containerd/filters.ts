/**
 * containerd's filter expressions for listing snapshots, e.g.
 * `kind==committed,labels."containerd.io/gc.root"` or `name~=^default/`.
 *
 * A filter is selectors joined by `,` (all must match); a list of filters
 * matches when any filter does. A selector is a field path (`name`,
 * `parent`, `kind`, `labels.<key>`; parts quoted with `"…"` when they hold
 * dots or slashes) and optionally an operator (`==`, `!=`, `~=` regular
 * expression) with a value (bare, `"quoted"` or `/quoted/`). A path alone
 * asks for presence. A missing field matches no operator, `!=` included, as
 * in containerd.
 *
 * @module
 */
import { InvalidArgumentError } from "../../errors.js";

/** What a filter sees of a snapshot. */
export interface FilterSubject {
  name: string;
  parent: string;
  kind: string;
  labels: Record<string, string>;
}

type Selector = { path: string[]; op: "present" } | { path: string[]; op: "==" | "!="; value: string } | Regex;
type Regex = { path: string[]; op: "~="; re: RegExp };

/** A parsed list of filters; `matches` of an empty list is always true. */
export type Filter = (s: FilterSubject) => boolean;

function fail(filter: string, reason: string): never {
  throw new InvalidArgumentError("ERR_INVALID_FILTER", `Cannot parse filter: ${reason} "${filter}"`);
}

/** Reads a quoted string starting at `s[i]` (`"` with JSON escapes, or `/` raw); returns [text, next index]. */
function quoted(filter: string, s: string, i: number): [string, number] {
  const q = s[i]!;
  let j = i + 1;
  while (j < s.length && s[j] !== q) j += s[j] === "\\" ? 2 : 1;
  if (j >= s.length) fail(filter, "unterminated quote");
  const body = s.slice(i + 1, j);
  if (q === "/") return [body.replace(/\\\//g, "/"), j + 1];
  try {
    return [JSON.parse(`"${body}"`) as string, j + 1];
  } catch {
    fail(filter, "bad escape in quoted string");
  }
}

function parseSelector(filter: string, s: string, i: number): [Selector, number] {
  const path: string[] = [];
  for (;;) {
    if (s[i] === '"') {
      const [part, next] = quoted(filter, s, i);
      path.push(part);
      i = next;
    } else {
      const m = /^[^.,=!~"\s/]+/.exec(s.slice(i));
      if (!m) fail(filter, `expected a field at offset ${i}`);
      path.push(m[0]);
      i += m[0].length;
    }
    if (s[i] !== ".") break;
    i++;
  }
  const op = s.slice(i, i + 2);
  if (op !== "==" && op !== "!=" && op !== "~=") return [{ path, op: "present" }, i];
  i += 2;
  let value: string;
  if (s[i] === '"' || s[i] === "/") {
    [value, i] = quoted(filter, s, i);
  } else {
    const m = /^[^,\s]*/.exec(s.slice(i))!;
    value = m[0];
    i += value.length;
  }
  if (op !== "~=") return [{ path, op, value }, i];
  try {
    return [{ path, op, re: new RegExp(value) }, i];
  } catch {
    fail(filter, `bad regular expression ${JSON.stringify(value)}`);
  }
}

function parseOne(filter: string): Selector[] {
  const s = filter.trim();
  const out: Selector[] = [];
  let i = 0;
  while (i < s.length) {
    const [sel, next] = parseSelector(filter, s, i);
    out.push(sel);
    i = next;
    while (s[i] === " ") i++;
    if (i < s.length) {
      if (s[i] !== ",") fail(filter, `unexpected ${JSON.stringify(s[i])} at offset ${i}`);
      i++;
      while (s[i] === " ") i++;
      if (i >= s.length) fail(filter, "trailing comma");
    }
  }
  return out;
}

function field(s: FilterSubject, path: string[]): string | undefined {
  const [head, ...rest] = path;
  if (rest.length === 0) {
    if (head === "name") return s.name;
    if (head === "parent") return s.parent;
    if (head === "kind") return s.kind;
    return undefined;
  }
  if (head === "labels") {
    const key = rest.join(".");
    return Object.prototype.hasOwnProperty.call(s.labels, key) ? s.labels[key] : undefined;
  }
  return undefined;
}

function matches(sel: Selector, s: FilterSubject): boolean {
  const v = field(s, sel.path);
  if (v === undefined) return false;
  switch (sel.op) {
    case "present":
      return true;
    case "==":
      return v === sel.value;
    case "!=":
      return v !== sel.value;
    case "~=":
      return sel.re.test(v);
  }
}

/**
 * Parses containerd filters (any of them may match; empty strings are ignored).
 * @throws ERR_INVALID_FILTER (InvalidArgumentError) on a syntax error
 */
export function parseFilters(filters: readonly string[]): Filter {
  const parsed = filters.filter((f) => f.trim() !== "").map(parseOne);
  if (parsed.length === 0) return () => true;
  return (s) => parsed.some((sels) => sels.every((sel) => matches(sel, s)));
}
