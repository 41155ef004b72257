// Test harness: real uvicorn nodes (`python -m synthia_rt.cli serve`) on the shared Redis and a
// SQLite file (or DATABASE_URL), each test file with its own REDIS_NAMESPACE; users over REST.
import { spawn, execFileSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

export { WebSocket };
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const PYTHON = process.env.PYTHON || "python3";
export const PASSWORD = "correct horse battery staple";

export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/** Settings shared by the nodes of one test file (so a restarted node sees the same state). */
export function clusterEnv(extra = {}) {
  const dir = mkdtempSync(join(tmpdir(), "synthia-js-"));
  return {
    DATABASE_URL: process.env.SYNTHIA_TEST_DATABASE_URL || `sqlite:///${join(dir, "db.sqlite3")}`,
    REDIS_URL: process.env.SYNTHIA_TEST_REDIS_URL || "redis://127.0.0.1:6379/0",
    REDIS_NAMESPACE: `jsclient-${randomBytes(6).toString("hex")}`,
    JWT_SECRET_KEY: randomBytes(32).toString("hex"),
    ENVIRONMENT: "development",
    ANALYZER: "local",
    DATA_DIR: dir,
    REGISTER_RATE: "1000 per hour",
    LOG_LEVEL: "WARNING",
    ARGON2_MEMORY_KIB: "1024",
    ARGON2_TIME_COST: "1",
    ...extra,
  };
}

export async function startNode(env, port) {
  port ??= await freePort();
  const child = spawn(PYTHON, ["-m", "synthia_rt.cli", "serve", "--host", "127.0.0.1", "--port", String(port)], {
    cwd: REPO,
    env: { ...process.env, PYTHONPATH: REPO, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => { stderr = (stderr + d).slice(-4000); });
  const node = {
    port,
    child,
    http: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}/ws`,
    async stop(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 15000);
      await exited;
      clearTimeout(timer);
    },
  };
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`node exited with ${child.exitCode}:\n${stderr}`);
    try {
      const r = await fetch(`${node.http}/healthz`);
      if (r.status === 200) return node;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  await node.stop("SIGKILL");
  throw new Error(`node did not become healthy:\n${stderr}`);
}

let counter = 0;
export async function register(node) {
  const email = `js-${Date.now()}-${process.pid}-${counter++}@example.com`;
  const r = await fetch(`${node.http}/api/v1/auth/register`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password: PASSWORD, display_name: "JS" }),
  });
  const body = await r.json();
  if (!r.ok) throw new Error(`register: ${r.status} ${JSON.stringify(body)}`);
  return { email, ...body };
}

const b64url = (buf) => Buffer.from(buf).toString("base64url");

/** Re-sign a token's claims (changed by `edit`) with `key` (HS256). */
export function resign(token, key, edit = (c) => c) {
  const [header, payload] = token.split(".");
  const claims = edit(JSON.parse(Buffer.from(payload, "base64url").toString()));
  const body = `${header}.${b64url(JSON.stringify(claims))}`;
  return `${body}.${b64url(createHmac("sha256", key).update(body).digest())}`;
}

/** A real face photo (scikit-image's astronaut) as JPEG bytes, made by the same Python. */
export function astronautJpeg() {
  const dir = mkdtempSync(join(tmpdir(), "synthia-img-"));
  const path = join(dir, "astronaut.jpg");
  execFileSync(PYTHON, ["-c",
    "import sys; from PIL import Image; from skimage import data; " +
    "Image.fromarray(data.astronaut()).save(sys.argv[1], 'JPEG', quality=90)", path]);
  return new Uint8Array(readFileSync(path));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves with the first `name` event, rejecting after `ms`. */
export function once(client, name, predicate = () => true, ms = 20000) {
  return client.waitFor(name, predicate, ms);
}
