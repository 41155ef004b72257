// The live demo at `/`: log in, analyse a photo with streamed fields, take the colour quiz
// with a provisional season after each answer, and see the history. Uses only synthia.js.
import { STAGES, SynthiaApi, SynthiaClient } from "./synthia-client.js";

const $ = (id) => document.getElementById(id);
const STORAGE_KEY = "synthia.demo.tokens";

const api = new SynthiaApi({
  tokens: JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null"),
  onTokens: (t) => (t ? sessionStorage.setItem(STORAGE_KEY, JSON.stringify(t)) : sessionStorage.removeItem(STORAGE_KEY)),
});
let client = null;
const analyses = new Map(); // analysis id -> {stage, partial, result, error}; filled by events in any order
let currentFacial = null;
let currentQuiz = null; // {quizId, analysisId}

// -- rendering helpers -----------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c);
  return node;
}

function scalar(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(2);
  return String(value);
}

// Flatten a (partial) result to "a.b" rows so fields appear one by one as they stream in.
function flatten(value, prefix = "", rows = []) {
  if (Array.isArray(value)) {
    const text = value.map((v) => (v && typeof v === "object" ? v.name ?? v.title ?? v.hex ?? JSON.stringify(v) : scalar(v)));
    rows.push([prefix, text.join(", ")]);
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, rows);
  } else if (prefix) {
    rows.push([prefix, scalar(value)]);
  }
  return rows;
}

function renderFields(dl, result) {
  dl.replaceChildren();
  for (const [key, text] of flatten(result ?? {})) {
    if (key === "palette") continue; // drawn as swatches
    dl.append(el("dt", { "data-field": key }, key), el("dd", { "data-field": key }, text));
  }
}

function renderPalette(palette) {
  const box = $("palette");
  box.replaceChildren();
  for (const colour of palette ?? []) {
    if (!colour?.hex) continue;
    const swatch = el("div", { class: "swatch", title: `${colour.name ?? ""} ${colour.hex}` });
    swatch.style.background = colour.hex; // CSSOM, allowed by the page's CSP
    box.append(el("figure", { class: "swatch-box" }, swatch, el("figcaption", {}, colour.name ?? colour.hex)));
  }
}

function setState(state) {
  const pill = $("conn-state");
  pill.dataset.state = state;
  pill.textContent = { ready: "live", connecting: "connecting…", reconnecting: "reconnecting…", closed: "offline", idle: "offline" }[state] ?? state;
}

// -- facial analysis -------------------------------------------------------------------------------

function analysisState(id) {
  if (!analyses.has(id)) analyses.set(id, { stage: null, partial: null, result: null, error: null });
  return analyses.get(id);
}

function renderFacial() {
  const s = currentFacial && analyses.get(currentFacial);
  const reached = s?.stage ? STAGES.indexOf(s.stage) : -1;
  for (const li of $("stages").children) {
    const i = STAGES.indexOf(li.dataset.stage);
    li.className = i < reached ? "done" : i === reached ? "current" : "";
  }
  if (!s) return;
  renderFields($("facial-result"), s.result ?? s.partial);
  $("facial-error").textContent = s.error ? `${s.error.code}: ${s.error.message}` : "";
  $("facial-status").textContent = s.result ? (s.cached ? "Result (from cache)" : "Result") : s.partial ? "Streaming…" : "";
  $("facial").dataset.status = s.result ? "done" : s.error ? "error" : "running";
}

async function analyse(file) {
  const preview = $("photo-preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file); // a blob: URL, allowed by the page's CSP
  preview.hidden = false;
  $("facial-error").textContent = "";
  $("facial-result").replaceChildren();
  $("upload-progress").value = 0;
  try {
    await client.uploadImage(file, {
      kind: "facial",
      onStart: ({ analysisId }) => { currentFacial = analysisId; analysisState(analysisId); renderFacial(); },
      onProgress: (done, size) => {
        const pct = size ? Math.round((100 * done) / size) : 100;
        $("upload-progress").value = pct;
        $("upload-pct").textContent = `${pct}%`;
      },
    });
  } catch (err) {
    $("facial-error").textContent = `${err.code}: ${err.message}`;
    $("facial").dataset.status = "error";
  }
}

function wireDropzone() {
  const zone = $("dropzone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) analyse(file);
  });
  $("file-input").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) analyse(file);
    e.target.value = "";
  });
}

// -- quiz ------------------------------------------------------------------------------------------

async function startQuiz() {
  $("quiz-error").textContent = "";
  $("quiz-result").replaceChildren();
  $("palette").replaceChildren();
  $("quiz-estimate").hidden = true;
  const reply = await client.quizStart(navigator.language);
  currentQuiz = { quizId: reply.quiz_id, analysisId: null, total: reply.questions.length };
  const box = $("quiz-questions");
  box.replaceChildren();
  for (const q of reply.questions) {
    const options = q.options.map((o) =>
      el("label", { class: "option" },
        el("input", { type: "radio", name: `q-${q.id}`, value: o.id, "data-question": q.id }),
        ` ${o.label}`));
    box.append(el("fieldset", { "data-question": q.id }, el("legend", {}, q.text), ...options));
  }
  box.onchange = async (e) => {
    const input = e.target;
    if (input.type !== "radio") return;
    try {
      const r = await client.quizAnswer(currentQuiz.quizId, input.dataset.question, input.value);
      $("quiz-submit").hidden = r.remaining > 0;
    } catch (err) {
      $("quiz-error").textContent = `${err.code}: ${err.message}`;
    }
  };
  $("quiz-submit").hidden = true;
  $("quiz").dataset.status = "answering";
}

function onEstimate(e) {
  if (!currentQuiz || e.quiz_id !== currentQuiz.quizId) return;
  $("quiz-estimate").hidden = false;
  $("estimate-season").textContent = e.season ?? "—";
  $("estimate-subseason").textContent = e.subseason ? `(${e.subseason})` : "";
  $("estimate-confidence").value = e.confidence ?? 0;
  $("estimate-answered").textContent = `${e.answered} answered`;
  $("quiz-estimate").dataset.answered = String(e.answered);
}

async function submitQuiz() {
  try {
    const reply = await client.quizSubmit(currentQuiz.quizId);
    currentQuiz.analysisId = reply.analysis_id;
    analysisState(reply.analysis_id);
    renderQuizResult();
    $("quiz").dataset.status = "submitted";
  } catch (err) {
    $("quiz-error").textContent = `${err.code}: ${err.message}`;
  }
}

function renderQuizResult() {
  const s = currentQuiz?.analysisId && analyses.get(currentQuiz.analysisId);
  if (!s) return;
  const result = s.result ?? s.partial;
  renderFields($("quiz-result"), result);
  renderPalette(result?.palette);
  if (s.error) $("quiz-error").textContent = `${s.error.code}: ${s.error.message}`;
  if (s.result) $("quiz").dataset.status = "done";
}

// -- history and notifications ---------------------------------------------------------------------

async function loadHistory() {
  try {
    const body = await api.request("GET", "/api/v1/history", undefined, { query: { limit: 20 } });
    const items = Array.isArray(body) ? body : body.items ?? [];
    $("history").replaceChildren(...items.map((a) => {
      const r = a.result ?? {};
      const summary = a.kind === "chromatic" ? [r.season, r.subseason].filter(Boolean).join(" / ")
        : [r.face_shape, r.skin?.undertone].filter(Boolean).join(" / ");
      return el("li", { "data-id": a.id, "data-kind": a.kind },
        el("strong", {}, a.kind), ` ${summary || a.status} `,
        el("span", { class: "muted" }, new Date(a.created_at).toLocaleString()));
    }));
  } catch (err) {
    $("history").replaceChildren(el("li", { class: "error" }, `${err.code}: ${err.message}`));
  }
}

function onNotification(n) {
  $("notifications").prepend(el("li", {}, el("strong", {}, n.title), ` ${n.body ?? ""} `, el("span", { class: "muted" }, n.kind)));
}

// -- analysis events (both facial and chromatic) ---------------------------------------------------

function onAnalysisEvent(e) {
  const s = analysisState(e.analysis_id);
  switch (e.event) {
    case "analysis.progress": s.stage = e.stage; break;
    case "analysis.partial": s.partial = e.partial; break;
    case "analysis.result": s.result = e.result; s.cached = e.cached; s.stage = "done"; break;
    case "analysis.error": if (e.code !== "bad_chunk") s.error = { code: e.code, message: e.message }; break;
    default: return;
  }
  if (e.analysis_id === currentFacial) renderFacial();
  if (e.analysis_id === currentQuiz?.analysisId) renderQuizResult();
  if (e.event === "analysis.result") loadHistory();
}

// -- Web Push: notifications while no tab is open (sw.js shows them) ------------------------------

function b64urlBytes(text) {
  const raw = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

async function enablePush() {
  const status = $("push-status");
  try {
    if (await Notification.requestPermission() !== "granted") { status.textContent = "Notifications are blocked in this browser."; return; }
    const { public_key: key } = await api.request("GET", "/api/v1/push/vapid-public-key", undefined, { auth: false });
    const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    await navigator.serviceWorker.ready;
    const subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64urlBytes(key) });
    await api.request("POST", "/api/v1/push/subscriptions", subscription.toJSON());
    status.textContent = "Notifications are on while no tab is open.";
    $("push-enable").hidden = true;
  } catch (err) {
    status.textContent = err.code === "push_disabled" ? "This server does not send notifications." : `Could not enable notifications: ${err.message || err}`;
  }
}

function offerPush() {
  const supported = "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
  $("push-enable").hidden = !supported || Notification.permission === "denied";
}

// -- session ---------------------------------------------------------------------------------------

async function startSession() {
  $("auth").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = api.user?.email ?? "";
  client = new SynthiaClient({ token: () => api.accessToken, refresh: () => api.refresh() });
  client.on("state", ({ state }) => setState(state));
  for (const name of ["analysis.progress", "analysis.partial", "analysis.result", "analysis.error"]) client.on(name, onAnalysisEvent);
  client.on("quiz.estimate", onEstimate);
  client.on("notification", onNotification);
  client.on("revoked", () => endSession("Your session was ended (logged out or blocked)."));
  try {
    await client.connect();
  } catch (err) {
    endSession(`Could not connect: ${err.message}`);
    return;
  }
  loadHistory();
  offerPush();
}

function endSession(message = "") {
  client?.close();
  client = null;
  api.accessToken = api.refreshToken = null;
  api.onTokens?.(null);
  $("app").hidden = true;
  $("auth").hidden = false;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("auth-error").textContent = message;
  setState("closed");
}

async function authenticate(kind) {
  const email = $("email").value.trim();
  const password = $("password").value;
  $("auth-error").textContent = "";
  try {
    if (kind === "register") {
      await api.register(email, password, $("display-name").value.trim());
      if (!api.accessToken) await api.login(email, password);
    } else {
      await api.login(email, password);
    }
    if (!api.user) api.user = { email };
    await startSession();
  } catch (err) {
    $("auth-error").textContent = err.message || err.code;
  }
}

function main() {
  $("auth-form").addEventListener("submit", (e) => { e.preventDefault(); authenticate("login"); });
  $("register").addEventListener("click", () => {
    if ($("auth-form").reportValidity()) authenticate("register");
  });
  $("logout").addEventListener("click", async () => {
    client?.close();
    await api.logout().catch(() => {});
    endSession();
  });
  $("quiz-start").addEventListener("click", () => startQuiz().catch((err) => { $("quiz-error").textContent = `${err.code}: ${err.message}`; }));
  $("quiz-submit").addEventListener("click", submitQuiz);
  $("history-refresh").addEventListener("click", loadHistory);
  $("push-enable").addEventListener("click", enablePush);
  wireDropzone();
  if (api.loggedIn) startSession();
}

main();
