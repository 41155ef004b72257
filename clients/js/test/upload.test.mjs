// Uploads against real nodes: analyzeImage end to end, a node killed mid-upload and replaced
// (same SQLite file, same Redis namespace) with the upload resuming, and AbortSignal -> cancel.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { SynthiaClient } from "../dist/index.js";
import { WebSocket, astronautJpeg, clusterEnv, register, startNode } from "./helpers.mjs";

const CHUNK = 16 * 1024;
let node;
let env;
let image;
before(async () => {
  env = clusterEnv({ MAX_CHUNK_BYTES: String(CHUNK) });
  image = astronautJpeg();
  node = await startNode(env);
});
after(async () => { await node?.stop(); });

async function client() {
  const user = await register(node);
  const c = new SynthiaClient({ url: node.ws, getToken: () => user.access_token, WebSocket, backoff: { initial: 100, max: 500 } });
  await c.connect();
  return c;
}

test("analyzeImage uploads in chunks, streams partials and resolves with the result", async () => {
  const c = await client();
  const progress = [];
  const partials = [];
  const result = await c.analyzeImage(new Blob([image], { type: "image/jpeg" }), {
    onProgress: (sent, size) => progress.push([sent, size]),
    onPartial: (partial) => partials.push(partial),
  });
  assert.equal(result.event, "analysis.result");
  assert.equal(typeof result.result.face_shape, "string");
  assert.ok(partials.length >= 1, "at least one analysis.partial");
  assert.deepEqual(progress.at(-1), [image.byteLength, image.byteLength]);
  assert.ok(progress.length >= Math.ceil(image.byteLength / CHUNK));
  c.close();
});

test("a node killed mid-upload: another node on the same DB/Redis takes over and the upload completes", async () => {
  const c = await client();
  const progress = [];
  const states = [];
  c.on("state", ({ state }) => states.push(state));
  let restarted = null;
  const outcome = c.analyzeImage(image, {
    contentType: "image/jpeg",
    onProgress: (sent, size) => {
      progress.push(sent);
      if (!restarted && sent > 2 * CHUNK && sent < size) {
        const port = node.port;
        restarted = node.stop("SIGKILL").then(async () => { node = await startNode(env, port); });
      }
    },
  });
  const result = await outcome;
  await restarted;
  assert.ok(restarted, "the node was killed during the upload");
  assert.ok(states.includes("reconnecting"));
  assert.equal(result.event, "analysis.result");
  assert.equal(progress.at(-1), image.byteLength);
  assert.deepEqual(progress, [...progress].sort((a, b) => a - b), "resumed, never restarted from 0");
  const status = await c.send("upload.status", { analysis_id: result.analysis_id });
  assert.equal(status.offset, image.byteLength);
  c.close();
});

test("aborting the signal cancels the analysis (analysis.cancel) and rejects with cancelled", async () => {
  const c = await client();
  const controller = new AbortController();
  let analysisId = null;
  const cancelled = c.waitFor("analysis.error", (e) => e.code === "cancelled", 20000);
  const run = c.analyzeImage(new Uint8Array(image), {
    contentType: "image/jpeg",
    onStart: (s) => { analysisId = s.analysisId; },
    onProgress: (sent) => { if (sent > CHUNK) controller.abort(); },
    signal: controller.signal,
  });
  await assert.rejects(run, (err) => err.name === "SynthiaError" && err.code === "cancelled");
  const e = await cancelled;
  assert.equal(e.analysis_id, analysisId);
  c.close();
});
