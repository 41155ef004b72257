// Token problems against a real node: each ends in the right auth_error or a refresh, never a loop.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { SynthiaClient, connect } from "../dist/index.js";
import { WebSocket, clusterEnv, register, resign, startNode, sleep, once } from "./helpers.mjs";

let node;
let env;
before(async () => {
  // Tokens live 70 s and session.expiring comes 67 s before expiry: 3 s after connecting.
  env = clusterEnv({ ACCESS_TOKEN_TTL: "70", EXPIRY_WARNING: "67" });
  node = await startNode(env);
});
after(async () => { await node?.stop(); });

function client(getToken, extra = {}) {
  return new SynthiaClient({ url: node.ws, getToken, WebSocket, backoff: { initial: 50, max: 200 }, ...extra });
}

/** Runs a client until it stops, recording getToken calls and auth_error. */
async function runUntilStopped(c) {
  const authErrors = [];
  c.on("auth_error", (e) => authErrors.push(e));
  await assert.rejects(c.connect());
  assert.equal(c.state, "closed");
  return authErrors;
}

test("a forged token (other key) stops with auth_error 4003 after one attempt", async () => {
  const user = await register(node);
  const forged = resign(user.access_token, "x".repeat(64));
  const reasons = [];
  const c = client(({ reason }) => { reasons.push(reason); return forged; });
  const errors = await runUntilStopped(c);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 4003);
  assert.equal(errors[0].error.closeCode, 4003);
  assert.deepEqual(reasons, ["connect"]);
});

test("a malformed token gives 4003 and connect() rejects with a SynthiaError", async () => {
  await assert.rejects(connect({ url: node.ws, getToken: () => "not-a-jwt", WebSocket }),
    (err) => err.name === "SynthiaError" && err.closeCode === 4003);
});

test("an expired token is replaced by getToken() once, then the client is ready", async () => {
  const user = await register(node);
  const expired = resign(user.access_token, env.JWT_SECRET_KEY, (c) => ({ ...c, iat: c.iat - 600, exp: c.iat - 300 }));
  const reasons = [];
  const c = client(({ reason }) => { reasons.push(reason); return reasons.length === 1 ? expired : user.access_token; });
  const ready = await c.connect();
  assert.equal(ready.user_id, user.user.id);
  assert.deepEqual(reasons, ["connect", "expired"]);
  c.close();
});

test("a token that stays expired ends with auth_error 4001 after exactly one retry", async () => {
  const user = await register(node);
  const expired = resign(user.access_token, env.JWT_SECRET_KEY, (c) => ({ ...c, iat: c.iat - 600, exp: c.iat - 300 }));
  const reasons = [];
  const c = client(({ reason }) => { reasons.push(reason); return expired; });
  const errors = await runUntilStopped(c);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 4001);
  assert.equal(errors[0].error.code, "token_expired");
  assert.deepEqual(reasons, ["connect", "expired"]);
});

test("logout revokes: the open socket gets auth_error 4010, and the token is refused at the handshake", async () => {
  const user = await register(node);
  const c = client(() => user.access_token);
  const authError = new Promise((r) => c.on("auth_error", r));
  await c.connect();
  const r = await fetch(`${node.http}/api/v1/auth/logout`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${user.access_token}` },
    body: JSON.stringify({ refresh_token: user.refresh_token }),
  });
  assert.ok(r.ok, `logout: ${r.status}`);
  const e = await authError;
  assert.equal(e.code, 4010);
  assert.equal(c.state, "closed");

  const again = client(() => user.access_token);
  const errors = await runUntilStopped(again);
  assert.deepEqual(errors.map((x) => x.code), [4010]);
});

test("a getToken() that fails with 401 stops the client with auth_error", async () => {
  // A plain Error from getToken() is temporary (retried); a SynthiaError with status 401 is final.
  const { SynthiaError } = await import("../dist/index.js");
  const d = client(() => { throw new SynthiaError({ code: "token_invalid", status: 401 }); });
  const errors = await runUntilStopped(d);
  assert.equal(errors.length, 1);
});

test("session.expiring calls getToken() and refreshes the session over auth.refresh", async () => {
  const user = await register(node);
  const reasons = [];
  const c = client(async ({ reason }) => {
    reasons.push(reason);
    if (reason !== "expiring") return user.access_token;
    const r = await fetch(`${node.http}/api/v1/auth/refresh`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: user.refresh_token }),
    });
    const body = await r.json();
    assert.ok(r.ok, JSON.stringify(body));
    return body.access_token;
  });
  const errors = [];
  c.on("error", (e) => errors.push(e));
  await c.connect();
  const expiring = await once(c, "session.expiring", () => true, 15000);
  assert.ok(expiring.expires_in <= 70);
  await sleep(1500); // the refresh round trip
  assert.deepEqual(reasons, ["connect", "expiring"]);
  assert.deepEqual(errors, []);
  assert.equal(c.state, "ready");
  assert.ok((await c.ping()).ts > 0);
  c.close();
});
