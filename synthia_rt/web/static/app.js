// The app at `/`: sign in, analyse a photo with the result streaming in as cards, take the
// colour quiz with a provisional season after each answer, open past results, manage the
// profile. Uses only the client package (synthia-client.js). Every word comes from the
// server's catalogs: the page is rendered in the visitor's language with the bundle embedded
// as #i18n-data (synthia_rt/web/ui.py), and a language switch fetches /api/v1/i18n/ui.
import {
  adoptAddressChoice, apply, fetchBundle, formatDate, has, inSentence, languageName, locale, localeFetch,
  rememberChoice, savedChoice, showConnection, t, word,
} from "./i18n.js";
import { STAGES, SynthiaApi, SynthiaClient } from "./synthia-client.js";

const $ = (id) => document.getElementById(id);
const TOKENS_KEY = "synthia.demo.tokens";
const VIEWS = ["analyze", "quiz", "history", "profile"];
const HEX = /^#[0-9a-f]{6}$/i;
// A swatch for the skin card when the result names a tone but carries no colour of its own.
const TONE_COLOURS = { very_light: "#F5DFD0", light: "#E8C3A6", intermediate: "#CF9D78", tan: "#AF7851", brown: "#855233", dark: "#553220" };

function applyLanguage(next) {
  apply(next);
  $("locale-select").value = next.locale;
  $("profile-locale").value = api.user?.locale ?? next.locale;
  renderFacial();
  renderQuiz();
}

// -- the API, in the page's language (a signed-in user's saved language wins on the server) ------

const api = new SynthiaApi({
  tokens: JSON.parse(sessionStorage.getItem(TOKENS_KEY) || "null"),
  onTokens: (tokens) => (tokens ? sessionStorage.setItem(TOKENS_KEY, JSON.stringify(tokens)) : sessionStorage.removeItem(TOKENS_KEY)),
  fetch: localeFetch,
});
let client = null;

function adoptSession(session) {
  api.accessToken = session.access_token;
  api.refreshToken = session.refresh_token;
  api.user = session.user ?? api.user;
  api.onTokens?.({ access_token: api.accessToken, refresh_token: api.refreshToken, user: api.user });
}

// -- building blocks -------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

function svg(markup, attrs = {}) {
  const box = document.createElement("div");
  box.innerHTML = markup; // fixed markup from this file only, never from data
  const node = box.firstElementChild;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.setAttribute("aria-hidden", "true");
  node.setAttribute("focusable", "false");
  return node;
}

function announce(text) {
  const region = $("announcer");
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 50); // a change, even when the text repeats
}

/** What went wrong (the server's translated message) and what to do about it. */
function explain(err) {
  const code = err?.code;
  let message = typeof err?.message === "string" && code ? err.message : "";
  if (code === "validation_error" && err.field === "password") message = t("auth.password_hint");
  const hint = has(`hint.${code}`) ? t(`hint.${code}`) : t("hint.generic");
  return { message, hint: hint === message ? "" : hint };
}

function showNotice(box, err, { retry = null, info = false } = {}) {
  box.replaceChildren();
  box.classList.toggle("info", info);
  if (!err) return;
  if (typeof err === "string") {
    box.append(el("p", { class: "notice-message", text: err }));
    return;
  }
  const { message, hint } = explain(err);
  if (message) box.append(el("p", { class: "notice-message", text: message }));
  if (hint) box.append(el("p", { class: "notice-hint", text: hint }));
  if (retry) {
    const button = el("button", { type: "button", class: "button secondary small", text: t("try_again") });
    button.addEventListener("click", retry);
    box.append(button);
  }
}

// -- result cards (facial and chromatic; partial results render the fields they have so far) -----

const FACE_PATHS = {
  oval: '<ellipse cx="50" cy="60" rx="33" ry="46"/>',
  round: '<circle cx="50" cy="60" r="40"/>',
  square: '<rect x="13" y="17" width="74" height="86" rx="14"/>',
  heart: '<path d="M12 36 Q12 14 50 14 Q88 14 88 36 Q88 72 50 106 Q12 72 12 36 Z"/>',
  diamond: '<path d="M50 12 Q72 30 88 58 Q72 92 50 108 Q28 92 12 58 Q28 30 50 12 Z"/>',
  oblong: '<rect x="22" y="8" width="56" height="104" rx="26"/>',
  triangle: '<path d="M32 16 Q50 8 68 16 Q88 68 86 92 Q72 110 50 110 Q28 110 14 92 Q12 68 32 16 Z"/>',
};

function faceIllustration(shape) {
  const outline = FACE_PATHS[shape] ?? FACE_PATHS.oval;
  return svg(`<svg viewBox="0 0 100 120" class="face-art"><g fill="#FBE9DD" stroke="#4C1D95" stroke-width="3">${outline}</g>
    <g fill="#4C1D95"><circle cx="38" cy="55" r="3.5"/><circle cx="62" cy="55" r="3.5"/></g>
    <path d="M40 80 Q50 87 60 80" fill="none" stroke="#4C1D95" stroke-width="3" stroke-linecap="round"/></svg>`);
}

function card(title, level, attrs = {}, ...children) {
  return el("article", { class: "result-card", ...attrs }, el(`h${level}`, { text: title }), ...children);
}

function swatchList(swatches, names) {
  const list = el("ul", { class: "palette" });
  swatches.forEach((s, i) => {
    if (!s || typeof s !== "object" || !HEX.test(s.hex ?? "")) return;
    const name = (Array.isArray(names) && typeof names[i] === "string" && names[i]) || s.name || s.hex;
    const chip = el("span", { class: "swatch", "data-hex": s.hex.toUpperCase(), "aria-hidden": "true" });
    chip.style.background = s.hex; // CSSOM, allowed by the page's CSP
    list.append(el("li", { class: "swatch-item" }, chip, el("span", { class: "swatch-name", text: name }), el("span", { class: "swatch-hex", text: s.hex.toUpperCase() })));
  });
  return list.children.length ? list : null;
}

function confidenceLine(value) {
  return typeof value === "number" && value >= 0 && value <= 1 ? el("p", { class: "muted", text: t("result.confidence", { pct: Math.round(value * 100) }) }) : null;
}

function facialCards(r, labels, level) {
  const cards = [];
  if (typeof r.face_shape === "string") {
    cards.push(card(t("result.face_shape"), level, { "data-field": "face_shape", "data-value": r.face_shape },
      el("div", { class: "card-hero" }, faceIllustration(r.face_shape), el("p", { class: "big-value", text: word("face_shape", r.face_shape, labels.face_shape) })),
      confidenceLine(r.confidence)));
  }
  const skin = r.skin && typeof r.skin === "object" ? r.skin : null;
  if (skin && (typeof skin.tone === "string" || typeof skin.undertone === "string")) {
    const hex = HEX.test(skin.hex ?? "") ? skin.hex : TONE_COLOURS[skin.tone];
    const facts = el("dl", { class: "facts" });
    if (typeof skin.tone === "string") facts.append(el("dt", { text: t("result.tone") }), el("dd", { "data-field": "skin.tone", "data-value": skin.tone, text: word("tone", skin.tone, labels.tone) }));
    if (typeof skin.undertone === "string") facts.append(el("dt", { text: t("result.undertone") }), el("dd", { "data-field": "skin.undertone", "data-value": skin.undertone, text: word("undertone", skin.undertone, labels.undertone) }));
    const swatch = hex ? el("span", { class: "skin-swatch", role: "img", "aria-label": t("result.skin_colour", { hex }) }) : null;
    if (swatch) swatch.style.background = hex;
    cards.push(card(t("result.skin"), level, { "data-field": "skin" }, el("div", { class: "card-hero" }, swatch, facts)));
  }
  const recs = Array.isArray(r.recommendations) ? r.recommendations.filter((x) => x && typeof x.title === "string" && x.title) : [];
  if (recs.length) {
    const list = el("ul", { class: "recommendations" });
    for (const rec of recs) {
      const category = typeof rec.category === "string" ? word("category", rec.category, labels.category?.[rec.category]) : "";
      list.append(el("li", { "data-category": rec.category ?? "" },
        category ? el("span", { class: "chip", text: category }) : null,
        el("strong", { text: rec.title }),
        typeof rec.detail === "string" && rec.detail ? el("p", { text: rec.detail }) : null));
    }
    cards.push(card(t("result.recommendations"), level, { "data-field": "recommendations", class: "result-card wide" }, list));
  }
  if (typeof r.summary === "string" && r.summary) cards.push(card(t("result.summary"), level, { "data-field": "summary", class: "result-card wide" }, el("p", { text: r.summary })));
  return cards;
}

function chromaticCards(r, labels, level) {
  const cards = [];
  const palette = Array.isArray(r.palette) ? r.palette : [];
  if (typeof r.season === "string") {
    const strip = el("div", { class: "season-strip", "aria-hidden": "true" });
    for (const s of palette.slice(0, 6)) {
      if (!HEX.test(s?.hex ?? "")) continue;
      const band = el("span");
      band.style.background = s.hex;
      strip.append(band);
    }
    cards.push(card(t("result.season"), level, { "data-field": "season", "data-value": r.season },
      strip.children.length ? strip : null,
      el("p", { class: "big-value", text: word("season", r.season, labels.season) }),
      typeof r.subseason === "string" ? el("p", { class: "sub-value", "data-field": "subseason", "data-value": r.subseason, text: word("subseason", r.subseason, labels.subseason) }) : null,
      confidenceLine(r.confidence)));
  }
  if (typeof r.undertone === "string" || typeof r.contrast === "string") {
    const facts = el("dl", { class: "facts" });
    if (typeof r.undertone === "string") facts.append(el("dt", { text: t("result.undertone") }), el("dd", { "data-field": "undertone", "data-value": r.undertone, text: word("undertone", r.undertone, labels.undertone) }));
    if (typeof r.contrast === "string") facts.append(el("dt", { text: t("result.contrast") }), el("dd", { "data-field": "contrast", "data-value": r.contrast, text: word("contrast", r.contrast, labels.contrast) }));
    cards.push(card(t("result.colouring"), level, { "data-field": "colouring" }, facts));
  }
  const good = swatchList(palette, labels.palette);
  if (good) cards.push(card(t("result.palette"), level, { "data-field": "palette", class: "result-card wide" }, good));
  const avoid = swatchList(Array.isArray(r.avoid) ? r.avoid : [], labels.avoid);
  if (avoid) cards.push(card(t("result.avoid"), level, { "data-field": "avoid", class: "result-card wide" }, avoid));
  if (typeof r.summary === "string" && r.summary) cards.push(card(t("result.summary"), level, { "data-field": "summary", class: "result-card wide" }, el("p", { text: r.summary })));
  return cards;
}

/** Draws `result` (possibly partial) as cards; fields it does not have, or does not know, are left out. */
function renderResult(container, kind, result, labels, level = 2) {
  const r = result && typeof result === "object" ? result : {};
  const given = labels && typeof labels === "object" ? labels : {};
  container.replaceChildren(...(kind === "chromatic" ? chromaticCards(r, given, level) : facialCards(r, given, level)));
}

function summaryOf(kind, r, labels = {}) {
  if (!r || typeof r !== "object") return "";
  if (kind === "chromatic") return word("subseason", r.subseason, labels.subseason) || word("season", r.season, labels.season);
  return [word("face_shape", r.face_shape, labels.face_shape), word("tone", r.skin?.tone, labels.tone)].filter(Boolean).join(" · ");
}

// -- analyses: events from both the photo and the quiz, in any order -------------------------------

const analyses = new Map(); // analysis id -> {stage, partial, result, labels, cached, error, said}

function analysisState(id) {
  if (!analyses.has(id)) analyses.set(id, { stage: null, partial: null, result: null, labels: null, cached: false, error: null, said: new Set() });
  return analyses.get(id);
}

function onAnalysisEvent(e) {
  const s = analysisState(e.analysis_id);
  switch (e.event) {
    case "analysis.progress": s.stage = e.stage; break;
    case "analysis.partial": s.partial = e.partial; break;
    case "analysis.result": s.result = e.result; s.labels = e.labels ?? null; s.cached = Boolean(e.cached); s.stage = "done"; break;
    case "analysis.error": if (e.code !== "bad_chunk") s.error = { code: e.code, message: e.message, temporary: e.temporary }; break;
    default: return;
  }
  if (e.analysis_id === facial.id) { renderFacial(); speakFacial(s, e); }
  if (e.analysis_id === quiz.analysisId) { renderQuiz(); speakQuiz(s, e); }
  if (e.event === "analysis.result" && !$("view-history").hidden) loadHistory();
}

// -- the photo -------------------------------------------------------------------------------------

const facial = { id: null };

function renderFacial() {
  const s = facial.id && analyses.get(facial.id);
  const reached = s?.stage ? STAGES.indexOf(s.stage) : -1;
  for (const li of $("stages").children) {
    const i = STAGES.indexOf(li.dataset.stage);
    li.className = i < reached ? "done" : i === reached ? "current" : "";
    if (i === reached) li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
  }
  if (!s) return;
  renderResult($("facial-result"), "facial", s.result ?? s.partial, s.labels);
  if (s.error) showNotice($("facial-error"), s.error, { retry: chooseAgain });
  $("facial").dataset.status = s.result ? "done" : s.error ? "error" : "running";
  if (s.result) $("facial-status").textContent = t(s.cached ? "analyze.cached" : "analyze.done");
}

// The live region says each stage once, each field as it first streams in, then the result.
function speakFacial(s, e) {
  const status = $("facial-status");
  if (e.event === "analysis.progress" && !s.said.has(`stage:${e.stage}`) && e.stage !== "done") {
    s.said.add(`stage:${e.stage}`);
    status.textContent = t(e.stage === "uploading" ? "analyze.uploading" : "analyze.working");
  } else if (e.event === "analysis.partial") {
    const r = e.partial ?? {};
    const fresh = [];
    if (typeof r.face_shape === "string" && !s.said.has("face_shape")) { s.said.add("face_shape"); fresh.push(t("result.field", { label: t("result.face_shape"), value: word("face_shape", r.face_shape) })); }
    if (typeof r.skin?.tone === "string" && !s.said.has("tone")) { s.said.add("tone"); fresh.push(t("result.field", { label: t("result.tone"), value: word("tone", r.skin.tone) })); }
    if (fresh.length) status.textContent = fresh.join(". ");
  } else if (e.event === "analysis.result") {
    const r = e.result ?? {};
    const labels = e.labels ?? {};
    status.textContent = `${t(s.cached ? "analyze.cached" : "analyze.done")} ${t("result.announce_facial", {
      shape: inSentence(word("face_shape", r.face_shape, labels.face_shape)), tone: inSentence(word("tone", r.skin?.tone, labels.tone)),
      undertone: inSentence(word("undertone", r.skin?.undertone, labels.undertone)),
    })}`;
  } else if (e.event === "analysis.error" && s.error) {
    status.textContent = "";
  }
}

function chooseAgain() {
  $("file-input").focus();
  $("file-input").click();
}

async function analyse(file) {
  const preview = $("photo-preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file); // a blob: URL, allowed by the page's CSP
  $("upload-area").hidden = false;
  showNotice($("facial-error"), null);
  $("facial-result").replaceChildren();
  $("upload-progress").value = 0;
  $("upload-pct").textContent = "0%";
  $("facial").dataset.status = "running";
  facial.id = null;
  renderFacial();
  $("facial-status").textContent = t("analyze.uploading");
  try {
    await client.uploadImage(file, {
      kind: "facial",
      onStart: ({ analysisId }) => { facial.id = analysisId; analysisState(analysisId); renderFacial(); },
      onProgress: (done, size) => {
        const pct = size ? Math.round((100 * done) / size) : 100;
        $("upload-progress").value = pct;
        $("upload-pct").textContent = `${pct}%`;
      },
    });
  } catch (err) {
    showNotice($("facial-error"), err, { retry: chooseAgain });
    $("facial-status").textContent = "";
    $("facial").dataset.status = "error";
  }
}

function wireUpload() {
  const zone = $("dropzone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const file = e.dataTransfer?.files?.[0];
    if (file) analyse(file);
  });
  $("file-input").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) analyse(file);
    e.target.value = "";
  });
}

// -- the colour quiz -------------------------------------------------------------------------------

const quiz = { quizId: null, analysisId: null, total: 0, estimate: null };

async function startQuiz() {
  showNotice($("quiz-error"), null);
  $("quiz-result").replaceChildren();
  $("quiz-estimate").hidden = true;
  $("quiz-submit").hidden = true;
  $("quiz-status").textContent = "";
  const reply = await client.quizStart(locale());
  Object.assign(quiz, { quizId: reply.quiz_id, analysisId: null, total: reply.questions.length, estimate: null });
  const box = $("quiz-questions");
  box.replaceChildren(...reply.questions.map((q, n) => el("fieldset", { class: "question", "data-question": q.id },
    el("legend", {}, el("span", { class: "question-number", text: `${n + 1}. ` }), q.text),
    el("div", { class: "options" }, ...q.options.map((o) => el("label", { class: "option" },
      el("input", { type: "radio", name: `q-${q.id}`, value: o.id, "data-question": q.id }),
      el("span", { text: o.label })))))));
  $("quiz-start").dataset.i18n = "quiz.restart";
  $("quiz-start").textContent = t("quiz.restart");
  $("quiz").dataset.status = "answering";
  box.querySelector("input")?.focus();
}

async function answer(e) {
  const input = e.target;
  if (input.type !== "radio" || !quiz.quizId) return;
  try {
    const r = await client.quizAnswer(quiz.quizId, input.dataset.question, input.value);
    $("quiz-submit").hidden = r.remaining > 0;
  } catch (err) {
    showNotice($("quiz-error"), err);
  }
}

function renderEstimate() {
  const e = quiz.estimate;
  $("quiz-estimate").hidden = !e;
  if (!e) return;
  $("estimate-season").textContent = word("season", e.season) || "—";
  $("estimate-season").dataset.value = e.season ?? "";
  $("estimate-subseason").textContent = e.subseason ? `(${word("subseason", e.subseason)})` : "";
  $("estimate-confidence").value = e.confidence ?? 0;
  $("estimate-answered").textContent = t("quiz.answered", { answered: e.answered, total: quiz.total });
  $("quiz-estimate").dataset.answered = String(e.answered);
}

function onEstimate(e) {
  if (!quiz.quizId || e.quiz_id !== quiz.quizId) return;
  quiz.estimate = e;
  renderEstimate();
  $("quiz-status").textContent = t("quiz.announce", { season: word("season", e.season), answered: e.answered, total: quiz.total });
}

async function submitQuiz() {
  showNotice($("quiz-error"), null);
  try {
    const reply = await client.quizSubmit(quiz.quizId);
    quiz.analysisId = reply.analysis_id;
    analysisState(reply.analysis_id);
    $("quiz-status").textContent = t("quiz.working");
    $("quiz").dataset.status = "submitted";
    $("quiz-questions").replaceChildren(); // answered: the palette takes their place
    renderQuiz();
  } catch (err) {
    showNotice($("quiz-error"), err, { retry: submitQuiz });
  }
}

function renderQuiz() {
  renderEstimate();
  const s = quiz.analysisId && analyses.get(quiz.analysisId);
  if (!s) return;
  renderResult($("quiz-result"), "chromatic", s.result ?? s.partial, s.labels);
  if (s.error) showNotice($("quiz-error"), s.error, { retry: startQuiz });
  if (s.result) {
    $("quiz").dataset.status = "done";
    $("quiz-submit").hidden = true;
  }
}

function speakQuiz(s, e) {
  if (e.event !== "analysis.result") return;
  const r = e.result ?? {};
  $("quiz-status").textContent = `${t("quiz.done")} ${t("result.announce_chromatic", {
    season: inSentence(word("season", r.season, e.labels?.season)), subseason: inSentence(word("subseason", r.subseason, e.labels?.subseason)),
  })}`;
}

// -- history ---------------------------------------------------------------------------------------

const past = { cursor: null, opened: null, seq: 0 }; // the history view

const KIND_ICONS = {
  facial: '<svg viewBox="0 0 24 24"><ellipse cx="12" cy="12" rx="7" ry="9" fill="none" stroke="currentColor" stroke-width="2"/><circle cx="9.5" cy="11" r="1.2" fill="currentColor"/><circle cx="14.5" cy="11" r="1.2" fill="currentColor"/></svg>',
  chromatic: '<svg viewBox="0 0 24 24"><circle cx="8" cy="9" r="4.5" fill="#C2410C"/><circle cx="16" cy="9" r="4.5" fill="#7C3AED"/><circle cx="12" cy="16" r="4.5" fill="#0F766E"/></svg>',
};

function historyEntry(a) {
  const summary = a.status === "done" ? summaryOf(a.kind, a.result, a.labels ?? {}) : t(`status.${a.status}`);
  const button = el("button", { type: "button", class: "history-entry", "data-id": a.id },
    svg(KIND_ICONS[a.kind] ?? KIND_ICONS.facial, { class: "history-icon" }),
    el("span", { class: "history-text" },
      el("strong", { text: t(`kind.${a.kind}`) }),
      el("span", { class: a.status === "done" ? "" : "muted", text: summary }),
      el("time", { datetime: a.created_at, class: "muted", text: formatDate(a.created_at) })));
  button.addEventListener("click", () => openAnalysis(a.id));
  return el("li", { "data-id": a.id, "data-kind": a.kind, "data-status": a.status }, button);
}

async function loadHistory({ more = false } = {}) {
  const seq = ++past.seq;
  showNotice($("history-error"), null);
  try {
    const body = await api.request("GET", "/api/v1/history", undefined, { query: { limit: 20, cursor: more ? past.cursor : null } });
    if (seq !== past.seq) return;
    const rows = (body.items ?? []).map(historyEntry);
    if (more) $("history").append(...rows); else $("history").replaceChildren(...rows);
    past.cursor = body.next_cursor ?? null;
    $("history-more").hidden = !past.cursor;
    $("history-empty").hidden = $("history").children.length > 0;
  } catch (err) {
    if (seq === past.seq) showNotice($("history-error"), err, { retry: () => loadHistory() });
  }
}

async function openAnalysis(id) {
  past.opened = id;
  showNotice($("history-detail-error"), null);
  $("history-result").replaceChildren();
  $("history-list").hidden = true;
  $("history-detail").hidden = false;
  $("history-detail-title").textContent = t("loading");
  $("history-detail-title").focus();
  try {
    const a = await api.request("GET", `/api/v1/analyses/${encodeURIComponent(id)}`);
    if (past.opened !== id) return;
    $("history-detail").dataset.kind = a.kind;
    $("history-detail").dataset.status = a.status;
    $("history-detail-title").textContent = t("history.opened", { kind: t(`kind.${a.kind}`), date: formatDate(a.created_at) });
    if (a.status === "done") renderResult($("history-result"), a.kind, a.result, a.labels, 3);
    else if (a.error) showNotice($("history-detail-error"), a.error);
    else $("history-result").append(el("p", { class: "muted", text: t(`status.${a.status}`) }));
    announce($("history-detail-title").textContent);
  } catch (err) {
    $("history-detail-title").textContent = t("history.title");
    showNotice($("history-detail-error"), err, { retry: () => openAnalysis(id) });
  }
}

function closeAnalysis() {
  const id = past.opened;
  past.opened = null;
  $("history-detail").hidden = true;
  $("history-list").hidden = false;
  const entry = [...$("history").querySelectorAll("button.history-entry")].find((b) => b.dataset.id === id);
  (entry ?? $("history-title")).focus();
}

// -- profile ---------------------------------------------------------------------------------------

function fillProfile() {
  const user = api.user ?? {};
  $("profile-email").textContent = user.email ?? "";
  for (const field of document.querySelectorAll(".account-username")) field.value = user.email ?? ""; // for password managers
  $("profile-name").value = user.display_name ?? "";
  $("profile-locale").value = user.locale ?? locale();
}

/** Switch the page to `locale` in place; signed in, it is saved to the profile first (then
 *  REST errors, socket texts and labels follow it everywhere). */
async function changeLocale(code, { save = api.loggedIn } = {}) {
  rememberChoice(code);
  if (save) {
    const r = await api.request("PATCH", "/api/v1/users/profile", { locale: code });
    adoptSession({ access_token: api.accessToken, refresh_token: api.refreshToken, user: r.user });
  }
  if (code !== locale()) {
    applyLanguage(await fetchBundle(api, code));
    if (client) await reconnect(); // the socket's language is fixed at its handshake
    if (api.loggedIn) loadHistory();
    if (past.opened !== null) openAnalysis(past.opened);
    announce(`${t("language")}: ${languageName(code)}`);
  }
}

async function saveProfile(e) {
  e.preventDefault();
  showNotice($("profile-error"), null);
  $("profile-result").textContent = "";
  const code = $("profile-locale").value;
  try {
    const r = await api.request("PATCH", "/api/v1/users/profile", { display_name: $("profile-name").value.trim(), locale: code });
    adoptSession({ access_token: api.accessToken, refresh_token: api.refreshToken, user: r.user });
    await changeLocale(code, { save: false });
    $("profile-result").textContent = t("profile.saved");
  } catch (err) {
    showNotice($("profile-error"), err);
  }
}

async function changePassword(e) {
  e.preventDefault();
  showNotice($("password-error"), null);
  $("password-result").textContent = "";
  // A password change ends every session of the user, this socket included: close it first
  // and open a new one with the fresh session the answer carries.
  detachClient();
  try {
    const r = await api.request("PATCH", "/api/v1/users/profile", { current_password: $("current-password").value, password: $("new-password").value });
    if (r.session) adoptSession(r.session);
    $("password-form").reset();
    $("password-result").textContent = t("profile.password_changed");
  } catch (err) {
    showNotice($("password-error"), err);
  }
  await connect();
}

async function deleteAccount(e) {
  e.preventDefault();
  showNotice($("delete-error"), null);
  detachClient(); // deleting closes every socket of the user (4010): not a revocation to report
  try {
    await api.request("DELETE", "/api/v1/users/profile", { password: $("delete-password").value });
  } catch (err) {
    showNotice($("delete-error"), err);
    await connect();
    return;
  }
  endSession(t("auth.deleted"), { info: true });
}

// -- notifications ---------------------------------------------------------------------------------

function onNotification(n) {
  $("notifications").prepend(el("li", {},
    el("strong", { text: n.title ?? "" }),
    n.body ? el("p", { text: n.body }) : null,
    n.created_at ? el("time", { class: "muted", datetime: n.created_at, text: formatDate(n.created_at) }) : null));
  $("notifications-empty").hidden = true;
  announce(t("push.announce", { title: n.title ?? "" }));
}

function b64urlBytes(text) {
  const raw = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

async function enablePush() {
  const status = $("push-status");
  try {
    if (await Notification.requestPermission() !== "granted") { status.textContent = t("push.blocked"); return; }
    const { public_key: key } = await api.request("GET", "/api/v1/push/vapid-public-key", undefined, { auth: false });
    const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    await navigator.serviceWorker.ready;
    const subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64urlBytes(key) });
    await api.request("POST", "/api/v1/push/subscriptions", subscription.toJSON());
    status.textContent = t("push.on");
    $("push-enable").hidden = true;
  } catch (err) {
    status.textContent = err.code === "push_disabled" ? t("push.disabled") : t("push.failed", { message: err.message || String(err) });
  }
}

function offerPush() {
  const supported = "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
  $("push-enable").hidden = !supported || Notification.permission === "denied";
}

// -- views -----------------------------------------------------------------------------------------

function showView(name, { focus = false } = {}) {
  for (const view of VIEWS) $(`view-${view}`).hidden = view !== name;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  if (name === "history") {
    if (past.opened === null) { $("history-detail").hidden = true; $("history-list").hidden = false; }
    loadHistory();
  }
  if (name === "profile") fillProfile();
  if (focus) $(`${name}-title`).focus();
}

function route({ focus = true } = {}) {
  if (!api.loggedIn) return;
  const name = location.hash.slice(1);
  showView(VIEWS.includes(name) ? name : "analyze", { focus: focus && VIEWS.includes(name) });
}

// -- connection and session ------------------------------------------------------------------------

function makeClient() {
  const c = new SynthiaClient({ token: () => api.accessToken, refresh: () => api.refresh() });
  c.on("state", ({ state }) => { if (c === client) showConnection(state); });
  for (const name of ["analysis.progress", "analysis.partial", "analysis.result", "analysis.error"]) c.on(name, onAnalysisEvent);
  c.on("quiz.estimate", onEstimate);
  c.on("notification", onNotification);
  c.on("revoked", () => { if (c === client) endSession(t("session.revoked")); });
  return c;
}

function detachClient() {
  const old = client;
  client = null;
  old?.close();
}

async function connect() {
  client = makeClient();
  await client.connect();
}

async function reconnect() {
  detachClient();
  await connect();
}

async function startSession() {
  $("auth").hidden = true;
  $("nav").hidden = false;
  $("logout").hidden = false;
  try {
    api.user = await api.request("GET", "/api/v1/users/profile");
    adoptSession({ access_token: api.accessToken, refresh_token: api.refreshToken, user: api.user });
    // The saved language wins; a choice made on this device before signing in is saved.
    if (api.user.locale && api.user.locale !== locale()) await changeLocale(api.user.locale, { save: false });
    else if (!api.user.locale && savedChoice() === locale()) await changeLocale(locale(), { save: true });
    await connect();
  } catch (err) {
    endSession(err.code === "unauthorized" || err.status === 401 ? "" : t("session.connect_failed", { message: explain(err).message || t("hint.generic") }));
    return;
  }
  route({ focus: false });
  offerPush();
  const wanted = new URLSearchParams(location.search).get("analysis"); // a notification's link
  if (wanted) {
    window.history.replaceState(null, "", location.pathname + "#history");
    showView("history");
    openAnalysis(wanted);
  }
}

function endSession(message = "", { info = false } = {}) {
  detachClient();
  api.accessToken = api.refreshToken = api.user = null;
  api.onTokens?.(null);
  for (const view of VIEWS) $(`view-${view}`).hidden = true;
  $("nav").hidden = true;
  $("logout").hidden = true;
  $("auth").hidden = false;
  // Nothing of the previous user stays on the page.
  analyses.clear();
  facial.id = null;
  Object.assign(quiz, { quizId: null, analysisId: null, total: 0, estimate: null });
  Object.assign(past, { cursor: null, opened: null });
  for (const id of ["facial-result", "quiz-result", "quiz-questions", "history", "history-result", "notifications"]) $(id).replaceChildren();
  for (const id of ["facial-status", "quiz-status", "profile-result", "password-result"]) $(id).textContent = "";
  for (const id of ["facial-error", "quiz-error", "history-error", "history-detail-error", "profile-error", "password-error", "delete-error"]) showNotice($(id), null);
  for (const id of ["upload-area", "quiz-estimate", "quiz-submit", "history-detail"]) $(id).hidden = true;
  $("history-list").hidden = false;
  $("facial").dataset.status = $("quiz").dataset.status = "idle";
  $("quiz-start").dataset.i18n = "quiz.start";
  $("quiz-start").textContent = t("quiz.start");
  $("photo-preview").removeAttribute("src");
  $("password").value = "";
  for (const form of ["profile-form", "password-form", "delete-form"]) $(form).reset();
  showNotice($("auth-error"), message || null, { info });
  showConnection("closed");
}

async function authenticate(kind) {
  const email = $("email").value.trim();
  const password = $("password").value;
  showNotice($("auth-error"), null);
  try {
    if (kind === "register") {
      await api.register(email, password, $("display-name").value.trim());
      if (!api.accessToken) await api.login(email, password);
    } else {
      await api.login(email, password);
    }
    await startSession();
  } catch (err) {
    showNotice($("auth-error"), err);
  }
}

function main() {
  adoptAddressChoice();
  $("locale-select").value = locale();
  $("auth-form").addEventListener("submit", (e) => { e.preventDefault(); authenticate("login"); });
  $("register").addEventListener("click", () => { if ($("auth-form").reportValidity()) authenticate("register"); });
  $("logout").addEventListener("click", async () => {
    detachClient();
    await api.logout().catch(() => {});
    endSession(t("auth.signed_out"), { info: true });
  });
  $("locale-select").addEventListener("change", (e) => changeLocale(e.target.value).catch((err) => announce(explain(err).message)));
  $("quiz-start").addEventListener("click", () => startQuiz().catch((err) => showNotice($("quiz-error"), err, { retry: startQuiz })));
  $("quiz-questions").addEventListener("change", answer);
  $("quiz-submit").addEventListener("click", submitQuiz);
  $("history-refresh").addEventListener("click", () => { if (past.opened === null) loadHistory(); else openAnalysis(past.opened); });
  $("history-more").addEventListener("click", () => loadHistory({ more: true }));
  $("history-back").addEventListener("click", closeAnalysis);
  $("profile-form").addEventListener("submit", saveProfile);
  $("password-form").addEventListener("submit", changePassword);
  $("delete-form").addEventListener("submit", deleteAccount);
  $("push-enable").addEventListener("click", enablePush);
  window.addEventListener("hashchange", () => route());
  wireUpload();
  if (api.loggedIn) startSession();
}

main();
