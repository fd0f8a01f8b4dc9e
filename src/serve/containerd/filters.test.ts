import test from "ava";
import { parseFilters } from "./filters.js";

const snap = {
  name: "default/3/run",
  parent: "default/2/base",
  kind: "active",
  labels: { "containerd.io/gc.root": "2026", "a.b": "x y", empty: "" },
};

test("parseFilters() matches containerd's selectors: fields, quoted label keys, operators, and/or", (t) => {
  const m = (...f: string[]) => parseFilters(f)(snap);
  t.true(m());
  t.true(m("", " "));
  t.true(m("kind==active"));
  t.false(m("kind==committed"));
  t.true(m('labels."containerd.io/gc.root"'));
  t.true(m('labels."a.b"=="x y"'));
  t.true(m("labels.empty"));
  t.false(m("labels.missing"));
  t.false(m("labels.missing!=x"), "a missing field matches no operator, != included");
  t.true(m("name~=^default/[0-9]+/run$,parent==default/2/base"));
  t.true(m("name~=/^default\\/3/"));
  t.false(m("kind==view,name==default/3/run"));
  t.true(m("kind==view", "name==default/3/run"));
  t.false(m("unknown==x"));
});

test("parseFilters() rejects malformed filters with ERR_INVALID_FILTER", (t) => {
  for (const f of ['labels."open', "kind==active,", "name~=(", ",kind", "kind==a b", 'labels."a\\q"']) {
    t.throws(() => parseFilters([f]), { code: "ERR_INVALID_FILTER" }, f);
  }
});
