// The package as published: generated types in sync with docs/asyncapi.json, the committed
// browser bundle in sync with the sources, and `npm pack` giving a tarball that installs,
// imports under node and type-checks a strict consumer.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, copyFileSync, mkdirSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { ASYNCAPI, OUTPUT, generate } from "../scripts/gen-types.mjs";

const PKG = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const BUNDLE = resolve(PKG, "../../synthia_rt/web/static/synthia-client.js");
const npm = (args, cwd) => execFileSync("npm", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

test("src/protocol.gen.ts is what scripts/gen-types.mjs makes of docs/asyncapi.json", () => {
  const expected = generate(JSON.parse(readFileSync(ASYNCAPI, "utf8")));
  assert.ok(readFileSync(OUTPUT, "utf8") === expected, "protocol.gen.ts drifted from docs/asyncapi.json: run `npm run gen` in clients/js");
});

test("the committed browser bundle synthia_rt/web/static/synthia-client.js is up to date", () => {
  const out = join(mkdtempSync(join(tmpdir(), "synthia-bundle-")), "bundle.js");
  execFileSync(process.execPath, [join(PKG, "scripts/bundle.mjs"), "--out", out]);
  assert.ok(readFileSync(BUNDLE, "utf8") === readFileSync(out, "utf8"), "stale bundle: run `npm run build` in clients/js and commit it");
});

test("README.md is docs/client.md", () => {
  assert.ok(readFileSync(join(PKG, "README.md"), "utf8") === readFileSync(resolve(PKG, "../../docs/client.md"), "utf8"),
    "README.md differs from docs/client.md: run `npm run build`");
});

test("npm pack gives a tarball that installs, imports under node and type-checks a strict consumer", () => {
  const dir = mkdtempSync(join(tmpdir(), "synthia-pack-"));
  const packed = JSON.parse(npm(["pack", "--json", "--ignore-scripts", "--pack-destination", dir], PKG));
  const files = packed[0].files.map((f) => f.path);
  for (const f of ["dist/index.js", "dist/index.d.ts", "dist/protocol.gen.d.ts", "README.md", "package.json"]) {
    assert.ok(files.includes(f), `${f} is in the tarball`);
  }
  assert.ok(!files.some((f) => f.startsWith("src/") || f.startsWith("node_modules/")));
  const app = join(dir, "app");
  mkdirSync(app);
  npm(["init", "-y"], app);
  npm(["install", "--no-audit", "--no-fund", "--offline", join(dir, packed[0].filename)], app);
  const out = execFileSync(process.execPath, ["--input-type=module", "-e",
    "import * as s from 'synthia-client'; console.log([typeof s.connect, typeof s.SynthiaClient, s.CloseCode.SESSION_REVOKED].join(' '))"],
    { cwd: app, encoding: "utf8" });
  assert.equal(out.trim(), "function function 4010");
  // The consumer example, strict, against the installed .d.ts (ws types from this package's devDependencies).
  copyFileSync(join(PKG, "examples/consumer.ts"), join(app, "consumer.ts"));
  for (const dep of ["ws", "@types"]) symlinkSync(join(PKG, "node_modules", dep), join(app, "node_modules", dep), "dir");
  execFileSync(process.execPath, [join(PKG, "node_modules/typescript/bin/tsc"), "--strict", "--noEmit",
    "--target", "ES2022", "--module", "ES2022", "--moduleResolution", "Bundler", "--lib", "ES2022,DOM,DOM.Iterable",
    "--types", "node", "--skipLibCheck", "consumer.ts"], { cwd: app, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
});
