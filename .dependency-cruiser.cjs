// The module map of DESIGN.md as rules: no import cycles, and arrows only
// point down the layers below (a module may import its own layer and the
// ones listed before it). `npm run lint:deps` checks them.
const layers = [
  ["base", "^src/(native|errors|index-internal)\\.ts$|^src/util/"],
  ["archive", "^src/archive/"],
  ["diff", "^src/diff/"],
  ["graphdriver", "^src/graphdriver/"],
  ["thinpool", "^src/thinpool/"],
  ["drivers", "^src/drivers/"],
  ["layer", "^src/layer/"],
  ["image", "^src/image/"],
  ["serve", "^src/serve/"],
  ["bench", "^src/bench/"],
  ["cli", "^src/cli/"],
];

const upward = layers.map(([name, path], i) => ({
  name: `${name}-imports-only-below`,
  comment: `${name} may import only the layers listed before it in .dependency-cruiser.cjs`,
  severity: "error",
  from: { path },
  to: { path: layers.slice(i + 1).map(([, p]) => `(${p})`).join("|") || "^$" },
}));

module.exports = {
  forbidden: [
    { name: "no-circular", severity: "error", from: {}, to: { circular: true } },
    {
      name: "nothing-imports-cli",
      severity: "error",
      from: { pathNot: "^src/cli/" },
      to: { path: "^src/cli/" },
    },
    {
      name: "product-code-never-imports-tests",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^test/" },
    },
    {
      name: "a-driver-never-imports-another",
      severity: "error",
      from: { path: "^src/drivers/([^/]+)/" },
      to: { path: "^src/drivers/[^/]+/", pathNot: "^src/drivers/$1/" },
    },
    ...upward.filter((r) => !r.name.startsWith("cli-")),
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(dist|build|node_modules)/" },
    tsConfig: { fileName: "tsconfig.json" },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { extensions: [".ts", ".js"] },
  },
};
