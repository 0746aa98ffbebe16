// Type-checks Grafana dashboards against the official Dashboard type of @grafana/schema.
//
//   node check-dashboards.mjs --modules build/grafana-schema dashboards/*.json
//
// Each JSON file is embedded verbatim, as an object literal, in a TypeScript file
// `const dashboard = <json> satisfies JsonDashboard;` (dashboard-type.ts) so TypeScript checks it the strict way:
// unknown fields (excess properties), wrong types, missing required fields, values outside the
// schema's enums. The JSON starts on line 1 of the generated file, so the line numbers tsc
// prints are the dashboard file's own. `--modules` is the folder where `npm ci` installed
// package.json (it holds node_modules); the generated files go to <modules>/generated.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const at = args.indexOf("--modules");
if (at < 0 || !args[at + 1]) {
  console.error("usage: node check-dashboards.mjs --modules DIR DASHBOARD.json...");
  process.exit(2);
}
const modules = resolve(args[at + 1]);
const files = args.filter((_, i) => i !== at && i !== at + 1);
if (files.length === 0) {
  console.error("check-dashboards: no dashboard files given");
  process.exit(2);
}

const out = join(modules, "generated");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
copyFileSync(join(dirname(fileURLToPath(import.meta.url)), "dashboard-type.ts"), join(out, "dashboard-type.ts"));
const names = [];
const original = new Map();   // generated file name -> the dashboard file it embeds
for (const file of files) {
  const text = readFileSync(file, "utf8");
  try {
    JSON.parse(text);
  } catch (error) {
    console.error(`${file}: not valid JSON: ${error.message}`);
    process.exit(1);
  }
  const name = basename(file).replace(/\.json$/, "").replace(/[^A-Za-z0-9_]/g, "_") + ".ts";
  writeFileSync(join(out, name),
    `const dashboard = ${text.trimEnd()} satisfies JsonDashboard;\n` +
    `import type { JsonDashboard } from "./dashboard-type.js";\nexport default dashboard;\n`);
  names.push(name);
  original.set(name, file);
}
writeFileSync(join(out, "tsconfig.json"), JSON.stringify({
  compilerOptions: {
    strict: true, noEmit: true, target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext",
    skipLibCheck: true, types: [],
  },
  files: names,
}, null, 2));
const tsc = join(modules, "node_modules", "typescript", "bin", "tsc");
const result = spawnSync(process.execPath, [tsc, "-p", join(out, "tsconfig.json"), "--pretty", "false"],
  { encoding: "utf8" });
// tsc names the generated file; the line and column are the dashboard's own.
const report = (result.stdout + result.stderr).replace(/^(\S+?\.ts)\(/gm,
  (whole, path) => `${original.get(basename(path)) ?? path}(`);
process.stdout.write(report);
if (result.status === 0) console.log(`ok: ${files.length} dashboards match @grafana/schema's Dashboard type`);
process.exit(result.status ?? 1);
