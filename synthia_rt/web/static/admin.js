// The operations dashboard at `/admin`: every node's metrics.snapshot on `admin:metrics`,
// drawn as small canvas charts; recent audit entries; notification and block forms.
import { SynthiaApi, SynthiaClient } from "./synthia-client.js";

const $ = (id) => document.getElementById(id);
const STORAGE_KEY = "synthia.admin.tokens";
const POINTS = 90; // samples kept per node and series (3 minutes at the default 2 s)
const STALE_AFTER = 3; // snapshot intervals without news before a node is shown as gone
const COLOURS = ["#6c5ce7", "#00b894", "#e17055", "#0984e3", "#fdcb6e", "#d63031", "#00cec9"];

const api = new SynthiaApi({
  tokens: JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null"),
  onTokens: (t) => (t ? sessionStorage.setItem(STORAGE_KEY, JSON.stringify(t)) : sessionStorage.removeItem(STORAGE_KEY)),
});
let client = null;
let auditTimer = null;
let renderTimer = null;
const nodes = new Map(); // node id -> {last snapshot, seenAt, colour, series: {name: number[]}}

// -- charts ------------------------------------------------------------------------------------------

const SERIES = {
  sockets: (s) => s.sockets,
  frames: (s) => (s.frames_in_per_s ?? 0) + (s.frames_out_per_s ?? 0),
  inflight: (s) => s.analyses_in_flight,
  latency: (s) => s.latency_ms?.p95 ?? null,
  cache: (s) => {
    const ns = Object.values(s.cache ?? {});
    const ops = ns.reduce((a, c) => a + (c.ops ?? 0), 0);
    return ops ? ns.reduce((a, c) => a + (c.hit_ratio ?? 0) * (c.ops ?? 0), 0) / ops : null;
  },
};

// 1, 2, 5 × 10^n at or above `value`: axis tops that read well.
function niceCeiling(value) {
  const step = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * step).find((v) => v >= value);
}

function drawChart(canvas, lines, { fixedMax = null } = {}) {
  const ctx = canvas.getContext("2d");
  const { width: w, height: h } = canvas;
  ctx.clearRect(0, 0, w, h);
  const values = lines.flatMap((l) => l.points.filter((v) => v !== null));
  const max = fixedMax ?? niceCeiling(Math.max(1, ...values) * 1.1);
  ctx.strokeStyle = "#e3e3ea";
  ctx.lineWidth = 1;
  for (const f of [0.25, 0.5, 0.75]) {
    ctx.beginPath();
    ctx.moveTo(0, h * f);
    ctx.lineTo(w, h * f);
    ctx.stroke();
  }
  ctx.fillStyle = "#888";
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillText(String(max), 2, 10);
  for (const { points, colour } of lines) {
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.beginPath();
    let drawing = false;
    points.forEach((v, i) => {
      const x = (i / (POINTS - 1)) * w;
      if (v === null) { drawing = false; return; }
      const y = h - 2 - (v / max) * (h - 14);
      if (drawing) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      drawing = true;
    });
    ctx.stroke();
  }
}

function redraw() {
  const lines = (name) => [...nodes.values()].map((n) => ({ points: n.series[name], colour: n.colour }));
  drawChart($("chart-sockets"), lines("sockets"));
  drawChart($("chart-frames"), lines("frames"));
  drawChart($("chart-inflight"), lines("inflight"));
  drawChart($("chart-latency"), lines("latency"));
  drawChart($("chart-cache"), lines("cache"), { fixedMax: 1 });
}

// -- snapshots ---------------------------------------------------------------------------------------

function fmt(v, digits = 1) {
  return v === null || v === undefined ? "—" : typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(digits)) : String(v);
}

function onSnapshot(s) {
  let node = nodes.get(s.node);
  if (!node) {
    node = { colour: COLOURS[nodes.size % COLOURS.length], series: {} };
    for (const name of Object.keys(SERIES)) node.series[name] = new Array(POINTS).fill(null);
    nodes.set(s.node, node);
  }
  node.last = s;
  node.seenAt = Date.now();
  for (const [name, pick] of Object.entries(SERIES)) {
    node.series[name].push(pick(s) ?? null);
    node.series[name].shift();
  }
  render();
}

function render() {
  const now = Date.now();
  let sockets = 0;
  let inflight = 0;
  let frames = 0;
  let live = 0;
  const rows = [];
  for (const [id, n] of nodes) {
    const s = n.last;
    const stale = now - n.seenAt > STALE_AFTER * Math.max(1, s.interval ?? 2) * 1000;
    if (!stale) {
      live += 1;
      sockets += s.sockets;
      inflight += s.analyses_in_flight;
      frames += (s.frames_in_per_s ?? 0) + (s.frames_out_per_s ?? 0);
    }
    const hits = Object.entries(s.cache ?? {}).map(([ns, c]) => `${ns} ${c.hit_ratio === null ? "—" : `${Math.round(c.hit_ratio * 100)}%`}`);
    const tr = document.createElement("tr");
    tr.dataset.node = id;
    if (stale) tr.className = "stale";
    const swatch = document.createElement("span");
    swatch.className = "dot";
    swatch.style.background = n.colour;
    const cells = [
      id, s.sockets, fmt(s.frames_in_per_s), fmt(s.frames_out_per_s), s.analyses_in_flight,
      `${fmt(s.latency_ms?.p50, 0)} / ${fmt(s.latency_ms?.p95, 0)}`, hits.join(", ") || "—",
      s.error_rate === null ? "—" : `${(s.error_rate * 100).toFixed(1)}%`, s.backends?.redis, s.backends?.postgres,
    ];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      if (i === 0) td.append(swatch, ` ${text}`);
      else td.textContent = fmt(text);
      if (i === 1) td.className = "sockets";
      if (i >= 8) td.dataset.status = String(text);
      tr.append(td);
    });
    rows.push(tr);
  }
  $("node-rows").replaceChildren(...rows);
  $("total-sockets").textContent = String(sockets);
  $("total-nodes").textContent = String(live);
  $("total-inflight").textContent = String(inflight);
  $("total-frames").textContent = fmt(frames);
  $("last-update").textContent = `updated ${new Date().toLocaleTimeString()}`;
  redraw();
}

// -- audit, notifications, blocking ------------------------------------------------------------------

async function loadAudit() {
  try {
    const body = await api.request("GET", "/api/v1/admin/audit", undefined, { query: { limit: 25 } });
    $("audit-rows").replaceChildren(...body.items.map((a) => {
      const tr = document.createElement("tr");
      tr.dataset.action = a.action;
      for (const text of [new Date(a.created_at).toLocaleString(), a.action, a.actor_id ?? "—", a.subject_id ?? "—", a.ip ?? "—",
        Object.entries(a.detail ?? {}).map(([k, v]) => `${k}=${v}`).join(" ")]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }));
  } catch (err) {
    if (err.status === 403) refuse(err.message);
  }
}

async function sendNotification(e) {
  e.preventDefault();
  const userId = $("notify-user").value.trim();
  const body = { kind: $("notify-kind").value.trim() || "info", title: $("notify-title").value, body: $("notify-body").value };
  if (userId) body.user_id = userId; else body.all = true;
  try {
    const r = await api.request("POST", "/api/v1/admin/notifications", body);
    $("notify-result").textContent = `Sent to ${r.target}.`;
    loadAudit();
  } catch (err) {
    $("notify-result").textContent = `${err.code}: ${err.message}`;
  }
}

async function setBlocked(blocked) {
  const userId = $("block-user").value.trim();
  if (!userId) return;
  try {
    await api.request("POST", `/api/v1/admin/users/${encodeURIComponent(userId)}/${blocked ? "block" : "unblock"}`);
    $("block-result").textContent = blocked ? "Blocked; their sockets were closed." : "Unblocked.";
    loadAudit();
  } catch (err) {
    $("block-result").textContent = `${err.code}: ${err.message}`;
  }
}

// -- session -----------------------------------------------------------------------------------------

function setState(state) {
  const pill = $("conn-state");
  pill.dataset.state = state;
  pill.textContent = { ready: "live", connecting: "connecting…", reconnecting: "reconnecting…", closed: "offline", idle: "offline" }[state] ?? state;
}

function show(view) {
  for (const id of ["auth", "refused", "dashboard"]) $(id).hidden = id !== view;
  $("logout").hidden = view !== "dashboard";
}

function refuse(reason) {
  stop();
  $("refused-reason").textContent = `${reason || "This dashboard requires the admin role."}`;
  show("refused");
}

function stop() {
  clearInterval(auditTimer);
  clearInterval(renderTimer);
  client?.close();
  client = null;
}

async function startDashboard() {
  $("who").textContent = api.user?.email ?? "";
  client = new SynthiaClient({ token: () => api.accessToken, refresh: () => api.refresh() });
  client.on("state", ({ state }) => setState(state));
  client.on("metrics.snapshot", onSnapshot);
  client.on("revoked", () => { stop(); show("auth"); });
  try {
    await client.connect();
    await client.subscribe("admin:metrics");
  } catch (err) {
    if (err.code === "forbidden") refuse("This dashboard requires the admin role; your account does not have it.");
    else { stop(); show("auth"); $("auth-error").textContent = `${err.code}: ${err.message}`; }
    return;
  }
  show("dashboard");
  loadAudit();
  auditTimer = setInterval(loadAudit, 5000);
  renderTimer = setInterval(render, 2000); // marks silent nodes stale even when no snapshot arrives
}

async function login(e) {
  e.preventDefault();
  $("auth-error").textContent = "";
  try {
    await api.login($("email").value.trim(), $("password").value);
    if (!api.user) api.user = { email: $("email").value.trim() };
    await startDashboard();
  } catch (err) {
    $("auth-error").textContent = err.message || err.code;
  }
}

function main() {
  $("auth-form").addEventListener("submit", login);
  $("notify-form").addEventListener("submit", sendNotification);
  $("block-form").addEventListener("submit", (e) => { e.preventDefault(); setBlocked(true); });
  $("unblock").addEventListener("click", () => setBlocked(false));
  $("audit-refresh").addEventListener("click", loadAudit);
  $("refused-back").addEventListener("click", async () => { await api.logout().catch(() => {}); show("auth"); });
  $("logout").addEventListener("click", async () => { stop(); await api.logout().catch(() => {}); show("auth"); setState("closed"); });
  show("auth");
  if (api.loggedIn) startDashboard();
}

main();
