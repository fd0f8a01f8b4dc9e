/**
 * `strata images|rmi|tag|inspect|history`: the stored images, printed as
 * the docker CLI prints them (same columns, widths, units and times).
 *
 * @module
 */
import type { Command } from "commander";
import type { HistoryEntry, ImageSummary } from "../../store/index.js";
import { humanSize } from "../../util/size.js";
import { print, withStore } from "../context.js";
import { createdAt, createdSince, jsonDocument, renderListing, shortID, unixSeconds } from "../output.js";
import { Template } from "../template.js";
import { defineVerb } from "../verbs.js";

/** One line of `images`: an image under one of its names. */
interface ImageRow {
  image: ImageSummary;
  repository: string;
  tag: string;
  digest: string;
}

/** "repo:tag" → ["repo", "tag"], minding a registry port ("host:5000/x:1"). */
function splitTag(name: string): [string, string] {
  const i = name.lastIndexOf(":");
  return i > name.lastIndexOf("/") ? [name.slice(0, i), name.slice(i + 1)] : [name, "latest"];
}

/** docker's rows: one per name, or one `<none>` row for an untagged image. */
function imageRows(images: ImageSummary[]): ImageRow[] {
  const rows: ImageRow[] = [];
  for (const image of images) {
    const digestOf = (repo: string) =>
      image.repoDigests.find((d) => d.startsWith(`${repo}@`))?.slice(repo.length + 1) ?? "<none>";
    if (image.repoTags.length === 0) {
      const repo = image.repoDigests[0]?.split("@")[0];
      rows.push({ image, repository: repo ?? "<none>", tag: "<none>", digest: repo ? digestOf(repo) : "<none>" });
    }
    for (const name of image.repoTags) {
      const [repository, tag] = splitTag(name);
      rows.push({ image, repository, tag, digest: digestOf(repository) });
    }
  }
  return rows;
}

const IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const IMAGES_LISTING = {
  table: IMAGES_TABLE,
  headers: {
    ID: "IMAGE ID",
    Repository: "REPOSITORY",
    Tag: "TAG",
    Digest: "DIGEST",
    CreatedSince: "CREATED",
    CreatedAt: "CREATED AT",
    Size: "SIZE",
    SharedSize: "SHARED SIZE",
    UniqueSize: "UNIQUE SIZE",
    VirtualSize: "VIRTUAL SIZE",
    Containers: "CONTAINERS",
  },
  api: (r: ImageRow) => ({
    Id: r.image.id,
    ParentId: "",
    RepoTags: r.image.repoTags,
    RepoDigests: r.image.repoDigests,
    Created: unixSeconds(r.image.created),
    Size: r.image.size,
    SharedSize: r.image.sharedSize,
    VirtualSize: r.image.size,
    Labels: null,
    Containers: r.image.containers,
  }),
  fields: (r: ImageRow) => ({
    ID: shortID(r.image.id),
    Repository: r.repository,
    Tag: r.tag,
    Digest: r.digest,
    CreatedSince: createdSince(r.image.created),
    CreatedAt: createdAt(r.image.created),
    // docker images prints 3 significant digits; everything else 4.
    Size: humanSize(r.image.size, 3),
    SharedSize: humanSize(r.image.sharedSize),
    UniqueSize: humanSize(r.image.size - r.image.sharedSize),
    VirtualSize: humanSize(r.image.size),
    Containers: String(r.image.containers),
  }),
};

const HISTORY_LISTING = {
  table: "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
  headers: {
    ID: "IMAGE",
    CreatedSince: "CREATED",
    CreatedAt: "CREATED AT",
    CreatedBy: "CREATED BY",
    Size: "SIZE",
    Comment: "COMMENT",
  },
  api: (h: HistoryEntry) => ({
    Id: h.id,
    Created: unixSeconds(h.created),
    CreatedBy: h.createdBy,
    Tags: h.tags.length ? h.tags : null,
    Size: h.size,
    Comment: h.comment,
  }),
  fields: (h: HistoryEntry) => ({
    ID: h.id === "<missing>" ? h.id : shortID(h.id),
    CreatedSince: createdSince(h.created),
    CreatedAt: createdAt(h.created),
    // docker history cuts CREATED BY to 45 characters ("…" included) unless --no-trunc.
    CreatedBy: [...h.createdBy].length > 45 ? `${[...h.createdBy].slice(0, 44).join("")}…` : h.createdBy,
    Size: humanSize(h.size, 3),
    Comment: h.comment,
  }),
};

/** Does `row` match `docker images [REPOSITORY[:TAG]]`? */
function matches(row: ImageRow, filter: string | undefined): boolean {
  if (!filter) return true;
  const [repo, tag] = filter.includes(":") ? splitTag(filter) : [filter, undefined];
  return row.repository === repo && (tag === undefined || row.tag === tag);
}

/** Adds the image listing and naming commands. */
export function imageCommands(program: Command): void {
  defineVerb(program, "images")
    .option("-q, --quiet", "only image ids")
    .option("--digests", "show digests")
    .option("--no-trunc", "full image ids")
    .option("--format <format>", "json, table, or a Go template ({{.Repository}} {{.Tag}} {{.ID}} {{.Size}} ...)")
    .option("-a, --all", "accepted for docker compatibility: strata stores no intermediate images")
    .action(
      async (
        filter: string | undefined,
        o: { quiet?: boolean; digests?: boolean; trunc: boolean; format?: string },
        cmd: Command,
      ) => {
        await withStore(cmd, async (store, g) => {
          const images = (await store.images.list()).sort((a, b) => (b.created ?? "").localeCompare(a.created ?? ""));
          const rows = imageRows(images).filter((r) => matches(r, filter));
          const table = o.digests
            ? "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
            : IMAGES_TABLE;
          const fields = o.trunc
            ? IMAGES_LISTING.fields
            : (r: ImageRow) => ({ ...IMAGES_LISTING.fields(r), ID: r.image.id });
          if (g.json) {
            // One object per image (not per name), as the Engine API lists them.
            const seen = new Set<string>();
            const unique = rows.filter((r) => !seen.has(r.image.id) && seen.add(r.image.id));
            print(...renderListing(unique, { json: true }, IMAGES_LISTING));
            return;
          }
          print(...renderListing(rows, o, { ...IMAGES_LISTING, table, fields }));
        });
      },
    );

  defineVerb(program, "history")
    .option("-q, --quiet", "only image ids")
    .option("-H, --human [bool]", "sizes and dates in human form", (v) => v !== "false", true)
    .option("--no-trunc", "do not cut long fields")
    .option("--format <format>", "json, table, or a Go template ({{.ID}} {{.CreatedBy}} {{.Size}} ...)")
    .action(
      async (ref: string, o: { quiet?: boolean; human: boolean; trunc: boolean; format?: string }, cmd: Command) => {
        await withStore(cmd, async (store, g) => {
          const entries = await store.images.history(ref);
          const fields = (h: HistoryEntry) => ({
            ...HISTORY_LISTING.fields(h),
            ...(o.trunc ? {} : { ID: h.id, CreatedBy: h.createdBy }),
            ...(o.human ? {} : { CreatedSince: h.created ?? "", Size: String(h.size) }),
          });
          print(...renderListing(entries, { ...o, json: g.json }, { ...HISTORY_LISTING, fields }));
        });
      },
    );

  defineVerb(program, "rmi")
    .option("-f, --force", "remove an image with several names by id")
    .action(async (refs: string[], o: { force?: boolean }, cmd: Command) => {
      await withStore(cmd, async (store, g) => {
        const out: Array<{ Untagged: string } | { Deleted: string }> = [];
        for (const r of refs) {
          const res = await store.images.remove(r, o);
          out.push(...res.untagged.map((u) => ({ Untagged: u })), ...res.deleted.map((d) => ({ Deleted: d })));
        }
        if (g.json) print(jsonDocument(out));
        else for (const e of out) print("Untagged" in e ? `Untagged: ${e.Untagged}` : `Deleted: ${e.Deleted}`);
      });
    });

  defineVerb(program, "tag").action(async (source: string, target: string, _o: unknown, cmd: Command) => {
    await withStore(cmd, (store) => store.images.tag(source, target));
  });

  defineVerb(program, "inspect")
    .option("-f, --format <format>", "a Go template applied to each image")
    .action(async (refs: string[], o: { format?: string }, cmd: Command) => {
      await withStore(cmd, async (store) => {
        const all = [];
        for (const r of refs) all.push(await store.images.inspect(r));
        if (o.format && o.format !== "json") {
          const t = new Template(o.format.replace(/\\t/g, "\t").replace(/\\n/g, "\n"));
          for (const i of all) print(t.render(i));
        } else print(jsonDocument(all));
      });
    });
}
