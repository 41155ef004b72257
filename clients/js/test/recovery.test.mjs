// Recovery with `since`: a client that was away re-subscribes with its last {offset, epoch} and
// gets what it missed, in order, exactly once; a reconnect with nothing missed is "recovered".
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { SynthiaClient, backoffDelay, retryHintMs } from "../dist/index.js";
import { WebSocket, clusterEnv, register, startNode } from "./helpers.mjs";

let node;
before(async () => { node = await startNode(clusterEnv()); });
after(async () => { await node?.stop(); });

async function takeQuiz(c) {
  const quiz = await c.quiz("en");
  for (const q of quiz.questions) await quiz.answer(q.id, q.options[0].id);
  return quiz.submit();
}

test("events missed while disconnected are replayed after the reconnect (subscribe with since)", async () => {
  const user = await register(node);
  let gate = null; // holds the reconnect of `away` until we let it go
  const away = new SynthiaClient({
    url: node.ws, WebSocket, backoff: { initial: 20, max: 50 },
    getToken: async ({ reason }) => { if (reason === "reconnect") await gate; return user.access_token; },
  });
  const other = new SynthiaClient({ url: node.ws, WebSocket, getToken: () => user.access_token });
  await away.connect();
  await other.connect();
  const channel = `user:${user.user.id}`;

  // A first result on user:<id> gives `away` a position on the channel.
  const first = away.waitFor("analysis.result", () => true, 30000);
  const s1 = await takeQuiz(other);
  assert.equal((await first).analysis_id, s1.analysis_id);
  const before = away.position(channel);
  assert.ok(before && before.offset >= 1);

  // Drop `away` (an abnormal close: it reconnects) and hold it off while a second result happens.
  let release;
  gate = new Promise((r) => { release = r; });
  const seen = [];
  away.on("analysis.result", (e) => { if (e.channel === channel) seen.push(e.analysis_id); });
  const ready = away.waitFor("ready", (e) => e.reconnect, 30000);
  away._ws.close(4000, "test: network drop");
  const second = other.waitFor("analysis.result", (e) => e.channel === channel, 30000);
  const s2 = await takeQuiz(other);
  await second;
  assert.deepEqual(seen, [], "nothing reaches the client while it is away");
  release();
  const r = await ready;
  assert.deepEqual(r.lost, [], "the replay was complete (recovered: true)");
  // The replay follows the subscribe reply (protocol §3), so it may land just after `ready`.
  for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((res) => setTimeout(res, 50));
  await new Promise((res) => setTimeout(res, 300));
  assert.deepEqual(seen, [s2.analysis_id], "the missed result was replayed, exactly once");
  assert.ok(away.position(channel).offset > before.offset);
  away.close();
  other.close();
});

test("reconnect delays use full jitter, capped, and honour the slow-down hints of 4009/4029", () => {
  const backoff = { initial: 500, max: 30000, factor: 2 };
  assert.equal(backoffDelay(0, backoff, () => 0), 0);
  assert.equal(backoffDelay(0, backoff, () => 0.999999), 499.9995);
  assert.equal(Math.round(backoffDelay(20, backoff, () => 1)), 30000);
  assert.equal(retryHintMs(4029, "too_many_connections"), 5000);
  assert.equal(retryHintMs(4009, "rate limited"), 5000);
  assert.equal(retryHintMs(1013, "retry_after=7"), 7000);
  assert.equal(retryHintMs(1006, ""), 0);
});

test("without a WebSocket implementation the error says how to provide one", async () => {
  const saved = globalThis.WebSocket;
  delete globalThis.WebSocket;
  try {
    assert.throws(() => new SynthiaClient({ url: "ws://127.0.0.1:1/ws", getToken: () => "t" }),
      (err) => err.code === "no_websocket" && /globalThis\.WebSocket/.test(err.message) && /"ws"/.test(err.message));
  } finally {
    if (saved) globalThis.WebSocket = saved;
  }
});
