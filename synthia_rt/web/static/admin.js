// The operations dashboard at `/admin`: every node's metrics.snapshot on `admin:metrics`,
// drawn as small canvas charts; recent audit entries; notification and block forms; user
// search; usage analytics. Its words come from the catalogs like the app's (i18n.js).
import { adoptAddressChoice, apply, fetchBundle, formatDate, locale, localeFetch, rememberChoice, showConnection, t } from "./i18n.js";
import { SynthiaApi, SynthiaClient } from "./synthia-client.js";

const $ = (id) => document.getElementById(id);
const STORAGE_KEY = "synthia.admin.tokens";
const POINTS = 90; // samples kept per node and series (3 minutes at the default 2 s)
const STALE_AFTER = 3; // snapshot intervals without news before a node is shown as gone
const COLOURS = ["#6c5ce7", "#00b894", "#e17055", "#0984e3", "#fdcb6e", "#d63031", "#00cec9"];

const api = new SynthiaApi({
  tokens: JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null"),
  onTokens: (tokens) => (tokens ? sessionStorage.setItem(STORAGE_KEY, JSON.stringify(tokens)) : sessionStorage.removeItem(STORAGE_KEY)),
  fetch: localeFetch,
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
  ctx.fillStyle = "#55526a";
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
  $("last-update").textContent = t("admin.updated", { time: new Date().toLocaleTimeString(locale()) });
  redraw();
}

// -- audit, notifications, blocking ------------------------------------------------------------------

async function loadAudit() {
  try {
    const body = await api.request("GET", "/api/v1/admin/audit", undefined, { query: { limit: 25 } });
    $("audit-rows").replaceChildren(...body.items.map((a) => {
      const tr = document.createElement("tr");
      tr.dataset.action = a.action;
      const cells = [formatDate(a.created_at), a.action, a.actor_id ?? "—", a.subject_id ?? "—", a.ip ?? "—",
        Object.entries(a.detail ?? {}).map(([k, v]) => `${k}=${v}`).join(" ")];
      cells.forEach((text, i) => {
        const td = document.createElement("td");
        td.textContent = text;
        if (i === cells.length - 1) td.className = "detail";
        tr.append(td);
      });
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
    $("notify-result").textContent = t("admin.sent_to", { target: r.target });
    loadAudit();
  } catch (err) {
    $("notify-result").textContent = problem(err);
  }
}

async function setBlocked(blocked) {
  const userId = $("block-user").value.trim();
  if (!userId) return;
  try {
    await api.request("POST", `/api/v1/admin/users/${encodeURIComponent(userId)}/${blocked ? "block" : "unblock"}`);
    $("block-result").textContent = t(blocked ? "admin.blocked_done" : "admin.unblocked_done");
    loadAudit();
  } catch (err) {
    $("block-result").textContent = problem(err);
  }
}

// -- finding users -----------------------------------------------------------------------------------

const userSearch = { q: "", cursor: null, seq: 0, timer: null };

function userRow(u) {
  const tr = document.createElement("tr");
  tr.dataset.userId = u.id;
  tr.dataset.status = u.blocked ? "blocked" : "active";
  const cells = [
    ["email", u.email], ["name", u.display_name || "—"], ["id", u.id], ["role", u.role],
    ["status", t(u.blocked ? "admin.blocked" : "admin.active")], ["sockets", u.open_sockets ?? "?"],
    ["analyses", u.analyses], ["joined", formatDate(u.created_at)],
  ];
  for (const [name, text] of cells) {
    const td = document.createElement("td");
    td.className = name;
    td.textContent = String(text);
    tr.append(td);
  }
  const actions = document.createElement("td");
  actions.className = "actions";
  const block = document.createElement("button");
  block.type = "button";
  block.className = u.blocked ? "secondary toggle-block" : "danger toggle-block";
  block.textContent = t(u.blocked ? "admin.unblock" : "admin.block");
  block.setAttribute("aria-label", t(u.blocked ? "admin.unblock_who" : "admin.block_who", { email: u.email }));
  block.addEventListener("click", () => toggleBlock(tr, u));
  const notify = document.createElement("button");
  notify.type = "button";
  notify.className = "secondary notify";
  notify.textContent = t("admin.notify");
  notify.setAttribute("aria-label", t("admin.notify_who", { email: u.email }));
  notify.addEventListener("click", () => {
    $("notify-user").value = u.id;
    $("notify-result").textContent = t("admin.recipient", { email: u.email });
    $("notify-title").focus();
  });
  actions.append(block, " ", notify);
  tr.append(actions);
  return tr;
}

async function searchUsers({ more = false } = {}) {
  clearTimeout(userSearch.timer);
  if (!more) {
    userSearch.q = $("user-search-q").value.trim();
    userSearch.cursor = null;
  }
  const seq = ++userSearch.seq; // answers to older keystrokes are dropped
  const query = { q: userSearch.q, limit: 20 };
  if (more && userSearch.cursor) query.cursor = userSearch.cursor;
  try {
    const page = await api.request("GET", "/api/v1/admin/users", undefined, { query });
    if (seq !== userSearch.seq) return;
    const rows = page.items.map(userRow);
    if (more) $("user-rows").append(...rows); else $("user-rows").replaceChildren(...rows);
    userSearch.cursor = page.next_cursor;
    $("user-more").hidden = !page.next_cursor;
    const shown = $("user-rows").children.length;
    $("user-search-result").textContent = shown ? t(page.next_cursor ? "admin.users_shown_more" : "admin.users_shown", { count: shown }) : t("admin.no_user");
  } catch (err) {
    if (seq !== userSearch.seq) return;
    if (err.status === 403) refuse(err.message);
    else $("user-search-result").textContent = problem(err);
  }
}

async function toggleBlock(tr, u) {
  const button = tr.querySelector("button.toggle-block");
  button.disabled = true;
  try {
    const r = await api.request("POST", `/api/v1/admin/users/${encodeURIComponent(u.id)}/${u.blocked ? "unblock" : "block"}`);
    const updated = { ...u, active: r.active, blocked: !r.active };
    const fresh = userRow(updated);
    tr.replaceWith(fresh);
    fresh.querySelector("button.toggle-block").focus(); // keyboard users stay on the row
    $("user-search-result").textContent = t(updated.blocked ? "admin.blocked_who" : "admin.unblocked_who", { email: u.email });
    loadAudit();
  } catch (err) {
    button.disabled = false;
    $("user-search-result").textContent = problem(err);
  }
}


// -- usage analytics (GET /api/v1/admin/analytics; plain SVG, no chart library) ------------------------

const SVG_NS = "http://www.w3.org/2000/svg";
const OUTCOME_COLOURS = { done: "#00b894", cancelled: "#b2bec3", failed: "#d63031", queued: "#fdcb6e", running: "#0984e3" };
const analyticsTz = () => $("analytics-tz").value.trim() || Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

const outcomeOf = (o) => (o.error_code ? `${o.status}:${o.error_code}` : o.status);
const outcomeColour = (key) => OUTCOME_COLOURS[key] ?? (key.startsWith("failed") ? "#e17055" : "#6c5ce7");

// Vertical bars, one per day, each a stack of {key, value} segments (bottom to top).
function drawStackedBars(svg, days, stacks, { title = (d, s) => `${d} ${s.key}: ${s.value}` } = {}) {
  const w = Number(svg.getAttribute("width"));
  const h = Number(svg.getAttribute("height"));
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`); // scales down with its box on a phone
  const top = niceCeiling(Math.max(1, ...stacks.map((st) => st.reduce((a, s) => a + s.value, 0))));
  const slot = w / Math.max(1, days.length);
  const scale = (h - 16) / top;
  svg.replaceChildren(svgEl("text", { x: 2, y: 10, class: "axis", "font-size": 10, fill: "#55526a" }, String(top)));
  days.forEach((day, i) => {
    let y = h - 2;
    for (const seg of stacks[i]) {
      if (!seg.value) continue;
      const height = seg.value * scale;
      y -= height;
      const rect = svgEl("rect", { x: i * slot + 1, y, width: Math.max(1, slot - 2), height, fill: seg.colour });
      rect.dataset.date = day;
      rect.dataset.key = seg.key;
      rect.dataset.count = String(seg.value);
      rect.append(svgEl("title", {}, title(day, seg)));
      svg.append(rect);
    }
  });
}

// Horizontal bars for a {label: count} distribution.
function drawDistribution(svg, counts) {
  const w = Number(svg.getAttribute("width"));
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  const max = Math.max(1, ...entries.map(([, n]) => n));
  svg.replaceChildren();
  if (!entries.length) svg.append(svgEl("text", { x: 4, y: 16, fill: "#55526a", "font-size": 12 }, t("admin.no_data")));
  entries.forEach(([key, n], i) => {
    const y = 4 + i * 20;
    const bar = svgEl("rect", { x: 90, y, height: 14, width: Math.max(1, ((w - 140) * n) / max), fill: COLOURS[i % COLOURS.length] });
    bar.dataset.key = key;
    bar.dataset.count = String(n);
    svg.append(svgEl("text", { x: 2, y: y + 11, "font-size": 11 }, key), bar,
      svgEl("text", { x: 94 + ((w - 140) * n) / max, y: y + 11, "font-size": 11 }, String(n)));
  });
  const h = Math.max(40, entries.length * 20 + 8);
  svg.setAttribute("height", String(h));
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
}

function renderAnalytics(body) {
  const days = body.daily.map((d) => d.date);
  const keys = [...new Set(body.outcomes.map(outcomeOf))].sort();
  const byDay = new Map(days.map((d) => [d, new Map()]));
  for (const o of body.outcomes) {
    const m = byDay.get(o.date);
    m.set(outcomeOf(o), (m.get(outcomeOf(o)) ?? 0) + o.count);
  }
  drawStackedBars($("chart-analyses"), days,
    days.map((d) => keys.map((key) => ({ key, value: byDay.get(d).get(key) ?? 0, colour: outcomeColour(key) }))));
  $("legend-analyses").replaceChildren(...keys.map((key) => {
    const span = document.createElement("span");
    const dot = document.createElement("span");
    dot.className = "dot";
    dot.style.background = outcomeColour(key);
    span.append(dot, ` ${key} `);
    return span;
  }));
  drawStackedBars($("chart-active"), days,
    body.daily.map((d) => [{ key: "active", value: d.active_users, colour: "#6c5ce7" }]));
  drawDistribution($("chart-seasons"), body.seasons);
  drawDistribution($("chart-shapes"), body.face_shapes);
  const totals = body.totals;
  $("analytics-totals").replaceChildren(...[
    ["active-users", totals.active_users, t("admin.total_active")], ["signups", totals.signups, t("admin.total_signups")],
    ["analyses", totals.analyses, t("admin.total_analyses")], ["cached", totals.cached, t("admin.total_cached")],
    ["conversions", totals.conversions, t("admin.total_conversions")], ["push", totals.push_optins, t("admin.total_push")],
    ["cost", `$${totals.cost_usd.toFixed(2)}`, t("admin.total_cost", { tokens: totals.prompt_tokens + totals.output_tokens + totals.thought_tokens })],
  ].map(([id, value, label]) => {
    const div = document.createElement("div");
    const big = document.createElement("span");
    big.className = "big";
    big.id = `analytics-total-${id}`;
    big.textContent = String(value);
    const small = document.createElement("span");
    small.className = "muted";
    small.textContent = label;
    div.append(big, small);
    return div;
  }));
}

function analyticsQuery() {
  return { from: $("analytics-from").value, to: $("analytics-to").value, tz: analyticsTz() };
}

async function loadAnalytics(e) {
  e?.preventDefault();
  $("analytics-result").textContent = t("loading");
  $("analytics-tz").removeAttribute("aria-invalid");
  try {
    const body = await api.request("GET", "/api/v1/admin/analytics", undefined, { query: analyticsQuery() });
    renderAnalytics(body);
    $("analytics-result").textContent = `${body.date_from} … ${body.date_to} (${body.tz})`;
  } catch (err) {
    $("analytics-result").textContent = problem(err);
    if (err.field === "tz") $("analytics-tz").setAttribute("aria-invalid", "true");
  }
}

async function downloadAnalyticsCsv(e) {
  e.preventDefault();
  try {
    const r = await fetch(`/api/v1/admin/analytics?${new URLSearchParams({ ...analyticsQuery(), format: "csv" })}`, {
      headers: { Authorization: `Bearer ${api.accessToken}` },
    });
    if (!r.ok) throw new Error(`${r.status}`);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(await r.blob());
    a.download = `analytics-${$("analytics-from").value}-${$("analytics-to").value}.csv`;
    a.click();
    URL.revokeObjectURL(a.href);
  } catch (err) {
    $("analytics-result").textContent = t("admin.csv_failed", { message: err.message });
  }
}

function initAnalytics() {
  const params = new URLSearchParams(location.search);
  const today = new Date();
  const iso = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  $("analytics-to").value = params.get("to") ?? iso(today);
  $("analytics-from").value = params.get("from") ?? iso(new Date(today.getFullYear(), today.getMonth(), today.getDate() - 29));
  $("analytics-tz").value = params.get("tz") ?? analyticsTz();
  $("analytics-form").addEventListener("submit", loadAnalytics);
  $("analytics-csv").addEventListener("click", downloadAnalyticsCsv);
}

// -- session -----------------------------------------------------------------------------------------

const setState = showConnection;

/** An error as a sentence: the server's message in the page's language. */
const problem = (err) => err?.message || t("hint.generic");

async function changeLocale(code) {
  rememberChoice(code);
  if (code === locale()) return;
  apply(await fetchBundle(api, code));
  if (client) render();
  if (!$("dashboard").hidden) { loadAudit(); loadAnalytics(); if ($("user-rows").children.length) searchUsers(); }
}

function show(view) {
  for (const id of ["auth", "refused", "dashboard"]) $(id).hidden = id !== view;
  $("logout").hidden = view !== "dashboard";
}

function refuse(reason) {
  stop();
  $("refused-reason").textContent = reason || t("admin.refused_reason");
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
    if (err.code === "forbidden") refuse(t("admin.refused_reason"));
    else { stop(); show("auth"); $("auth-error").textContent = problem(err); }
    return;
  }
  show("dashboard");
  loadAudit();
  loadAnalytics();
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
    $("auth-error").textContent = problem(err);
  }
}

function main() {
  adoptAddressChoice();
  $("locale-select").value = locale();
  $("locale-select").addEventListener("change", (e) => changeLocale(e.target.value).catch(() => {}));
  $("auth-form").addEventListener("submit", login);
  $("notify-form").addEventListener("submit", sendNotification);
  $("block-form").addEventListener("submit", (e) => { e.preventDefault(); setBlocked(true); });
  $("unblock").addEventListener("click", () => setBlocked(false));
  $("audit-refresh").addEventListener("click", loadAudit);
  $("user-search-form").addEventListener("submit", (e) => { e.preventDefault(); searchUsers(); });
  $("user-search-q").addEventListener("input", () => {
    clearTimeout(userSearch.timer);
    userSearch.timer = setTimeout(searchUsers, 300); // search as you type, once typing pauses
  });
  $("user-more").addEventListener("click", () => searchUsers({ more: true }));

  initAnalytics();
  $("refused-back").addEventListener("click", async () => { await api.logout().catch(() => {}); show("auth"); });
  $("logout").addEventListener("click", async () => { stop(); await api.logout().catch(() => {}); show("auth"); setState("closed"); });
  show("auth");
  if (api.loggedIn) startDashboard();
}

main();
