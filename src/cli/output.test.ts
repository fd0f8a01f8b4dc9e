/** Docker's table layout, durations and the Go-template subset of --format. */
import test from "ava";
import { createdSince, humanDuration, renderListing, tabulate } from "./output.js";
import { goJson, Template } from "./template.js";

test("tabulate() pads cells as Go's tabwriter with docker's settings (min 10, padding 3)", (t) => {
  t.deepEqual(tabulate(["REPOSITORY\tTAG\tIMAGE ID", "busybox\tlatest\tbeae173ccac6"]), [
    "REPOSITORY   TAG       IMAGE ID",
    "busybox      latest    beae173ccac6",
  ]);
  t.deepEqual(tabulate(["a\tb", "ü\tc"]), ["a         b", "ü         c"], "width counts characters, not bytes");
});

test("humanDuration() is go-units HumanDuration", (t) => {
  t.is(humanDuration(500), "Less than a second");
  t.is(humanDuration(1000), "1 second");
  t.is(humanDuration(59_000), "59 seconds");
  t.is(humanDuration(60_000), "About a minute");
  t.is(humanDuration(45 * 60_000), "45 minutes");
  t.is(humanDuration(3_600_000), "About an hour");
  t.is(humanDuration(47 * 3_600_000), "47 hours");
  t.is(humanDuration(3 * 86_400_000), "3 days");
  t.is(humanDuration(20 * 86_400_000), "2 weeks");
  t.is(humanDuration(90 * 86_400_000), "3 months");
  t.is(humanDuration(3 * 365 * 86_400_000), "3 years");
  t.is(createdSince(undefined), "N/A");
});

test("Template reads fields, functions, pipelines and trims; refuses control structures", (t) => {
  const row = { ID: "abc", Names: ["a", "b"], Nested: { X: 1 }, Empty: "" };
  t.is(new Template("{{.ID}}\t{{.Nested.X}}").render(row), "abc\t1");
  t.is(new Template('{{join .Names ","}}|{{.ID | upper}}').render(row), "a,b|ABC");
  t.is(new Template("{{upper .ID}} {{truncate .ID 2}} {{json .Names}}").render(row), 'ABC ab ["a","b"]');
  t.is(new Template("x {{- .ID -}} y").render(row), "xabcy");
  t.throws(() => new Template("{{if .ID}}x{{end}}"), { code: "ERR_USAGE" });
  t.throws(() => new Template("{{.ID"), { code: "ERR_USAGE" });
  t.throws(() => new Template("{{.Nope}}").render(row), { code: "ERR_USAGE", message: /no field "Nope"/ });
  t.is(goJson({ b: "<x>", a: 1 }), '{"a":1,"b":"\\u003cx\\u003e"}', "Go's encoding: sorted keys, <> escaped");
});

test("renderListing() prints tables, templates, json lines, -q and --json documents", (t) => {
  const listing = {
    table: "table {{.ID}}\t{{.Name}}",
    headers: { ID: "ID", Name: "NAME" },
    api: (r: { id: string; name: string }) => ({ Id: r.id }),
    fields: (r: { id: string; name: string }) => ({ ID: r.id, Name: r.name }),
  };
  const rows = [{ id: "1", name: "one" }];
  t.deepEqual(renderListing(rows, {}, listing), ["ID        NAME", "1         one"]);
  t.deepEqual(renderListing(rows, { quiet: true }, listing), ["1"]);
  t.deepEqual(renderListing(rows, { format: "json" }, listing), ['{"ID":"1","Name":"one"}']);
  t.deepEqual(renderListing(rows, { format: "{{.Name}}\\t{{.ID}}" }, listing), ["one\t1"]);
  t.deepEqual(renderListing(rows, { json: true }, listing), ['[\n  {\n    "Id": "1"\n  }\n]']);
});
