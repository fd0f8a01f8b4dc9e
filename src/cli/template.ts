/**
 * The subset of Go's text/template that `docker --format` users write:
 * `{{.Field}}`, `{{.A.B}}`, `{{json .}}`, functions `json upper lower title
 * join split truncate pad println`, pipelines (`{{.Names | join ","}}`),
 * string and number arguments, `{{-`/`-}}` trimming. No control structures
 * (`if`, `range`): a template using them is refused, not misread.
 *
 * @module
 */
import { InvalidArgumentError } from "../errors.js";

type Value = unknown;
type Node = { text: string } | { pipeline: Command[] };
type Command = Arg[];
type Arg = { field: string[] } | { literal: Value } | { ident: string };

const bad = (tmpl: string, why: string) =>
  new InvalidArgumentError("ERR_USAGE", `Cannot parse the format: ${why} "${tmpl}"`);

/** Go's JSON: map keys sorted, `<`, `>` and `&` escaped as encoding/json does. */
export function goJson(v: Value): string {
  const sorted = (x: Value): Value =>
    x && typeof x === "object" && !Array.isArray(x)
      ? Object.fromEntries(
          Object.keys(x)
            .sort()
            .map((k) => [k, sorted((x as Record<string, Value>)[k])]),
        )
      : Array.isArray(x)
        ? x.map(sorted)
        : x;
  return JSON.stringify(sorted(v) ?? null)
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026");
}

function text(v: Value): string {
  if (v === undefined || v === null) return "<no value>";
  if (Array.isArray(v)) return `[${v.map(text).join(" ")}]`;
  if (typeof v === "object")
    return `map[${Object.entries(v)
      .map(([k, x]) => `${k}:${text(x)}`)
      .join(" ")}]`;
  return String(v);
}

const FUNCS: Record<string, (...args: Value[]) => Value> = {
  json: (v) => goJson(v),
  upper: (v) => text(v).toUpperCase(),
  lower: (v) => text(v).toLowerCase(),
  title: (v) => text(v).replace(/\b\w/g, (c) => c.toUpperCase()),
  join: (list, sep) => (Array.isArray(list) ? list.map(text).join(text(sep)) : text(list)),
  split: (s, sep) => text(s).split(text(sep)),
  truncate: (s, n) => [...text(s)].slice(0, Number(n)).join(""),
  pad: (s, before, after) => " ".repeat(Number(before)) + text(s) + " ".repeat(Number(after)),
  println: (...a) => `${a.map(text).join(" ")}\n`,
};

function parseArg(tok: string, tmpl: string): Arg {
  if (tok === ".") return { field: [] };
  if (tok.startsWith(".")) return { field: tok.slice(1).split(".") };
  if (tok.startsWith('"')) return { literal: JSON.parse(tok) as string };
  if (tok.startsWith("`")) return { literal: tok.slice(1, -1) };
  if (/^-?\d+$/.test(tok)) return { literal: Number(tok) };
  if (tok in FUNCS) return { ident: tok };
  throw bad(tmpl, `unknown function or field ${tok}`);
}

function parseAction(src: string, tmpl: string): Command[] {
  const tokens = src.match(/"(?:[^"\\]|\\.)*"|`[^`]*`|\||[^\s|]+/g) ?? [];
  if (tokens.length === 0) throw bad(tmpl, "empty action");
  if (["if", "range", "with", "define", "template", "block", "else", "end"].includes(tokens[0]!))
    throw bad(tmpl, `control structure "${tokens[0]}" not supported`);
  const cmds: Command[] = [[]];
  for (const t of tokens) {
    if (t === "|") cmds.push([]);
    else cmds.at(-1)!.push(parseArg(t, tmpl));
  }
  if (cmds.some((c) => c.length === 0)) throw bad(tmpl, "empty command in a pipeline");
  return cmds;
}

/**
 * Parses a template once; {@link Template.render} applies it to each row.
 * @throws ERR_USAGE (InvalidArgumentError) for what the subset cannot read
 */
export class Template {
  readonly #nodes: Node[];

  constructor(tmpl: string) {
    const nodes: Node[] = [];
    const re = /\{\{(-\s)?([\s\S]*?)(\s-)?\}\}/g;
    let last = 0;
    let trimNext = false;
    for (let m = re.exec(tmpl); m; m = re.exec(tmpl)) {
      let t = tmpl.slice(last, m.index);
      if (trimNext) t = t.replace(/^\s+/, "");
      if (m[1]) t = t.replace(/\s+$/, "");
      if (t) nodes.push({ text: t });
      nodes.push({ pipeline: parseAction(m[2]!.trim(), tmpl) });
      trimNext = Boolean(m[3]);
      last = m.index + m[0].length;
    }
    let rest = tmpl.slice(last);
    if (trimNext) rest = rest.replace(/^\s+/, "");
    if (rest.includes("{{")) throw bad(tmpl, "unclosed action");
    if (rest) nodes.push({ text: rest });
    this.#nodes = nodes;
  }

  /** Renders the template against `data` (fields read with `.Name`). */
  render(data: Value): string {
    return this.#nodes.map((n) => ("text" in n ? n.text : text(this.#run(n.pipeline, data)))).join("");
  }

  #run(pipeline: Command[], data: Value): Value {
    let prev: Value;
    pipeline.forEach((cmd, i) => {
      const vals = cmd.map((a) => this.#eval(a, data));
      if (i > 0) vals.push(prev);
      const head = cmd[0]!;
      if ("ident" in head) prev = FUNCS[head.ident]!(...vals.slice(1));
      else if (vals.length === 1) prev = vals[0];
      else throw new InvalidArgumentError("ERR_USAGE", "Cannot run the format: a value cannot take arguments");
    });
    return prev;
  }

  #eval(a: Arg, data: Value): Value {
    if ("literal" in a) return a.literal;
    if ("ident" in a) return a.ident;
    let v = data;
    for (const f of a.field) {
      if (v === null || typeof v !== "object" || !(f in v))
        throw new InvalidArgumentError("ERR_USAGE", `Cannot run the format: no field "${f}"`);
      v = (v as Record<string, Value>)[f];
    }
    return v;
  }
}
