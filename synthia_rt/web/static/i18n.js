// The pages' words, shared by app.js (/) and admin.js (/admin). The server renders each page
// in the visitor's language and embeds the bundle (#i18n-data; the table is
// synthia_rt/web/ui.py, the texts are in the gettext catalogs); switching language fetches
// another bundle from /api/v1/i18n/ui and applies it in place.

export const LOCALE_COOKIE = "synthia_locale";

let bundle = JSON.parse(document.getElementById("i18n-data")?.textContent || "{}");

export const locale = () => bundle.locale ?? "es";
export const has = (key) => typeof bundle.strings?.[key] === "string";
export const languageName = (code) => bundle.languages?.[code] ?? code;

/** The text `key` with its `{name}` placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const text = bundle.strings?.[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

const humanise = (key) => String(key).replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());

/** A result key as a word: the catalogs' label, else the one sent with the result, else the key. */
export function word(group, key, given) {
  if (typeof key !== "string") return "";
  return bundle.labels?.[group]?.[key] ?? (typeof given === "string" && given ? given : humanise(key));
}

/** A label inside a sentence ("Oval" → "oval"). */
export const inSentence = (text) => (text ? text.toLocaleLowerCase(locale()) : text);

/** Makes `next` the page's language: every [data-i18n] text and [data-i18n-<attribute>]. */
export function apply(next) {
  bundle = next;
  document.documentElement.lang = next.locale;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const attr of ["aria-label", "placeholder", "alt", "title"]) {
    for (const node of document.querySelectorAll(`[data-i18n-${attr}]`)) node.setAttribute(attr, t(node.getAttribute(`data-i18n-${attr}`)));
  }
}

/** The bundle of `code` from the server. */
export function fetchBundle(api, code) {
  return api.request("GET", "/api/v1/i18n/ui", undefined, { auth: false, query: { locale: code } });
}

/** A fetch that asks the API to answer in the page's language (a saved profile language wins). */
export const localeFetch = (url, init = {}) => fetch(url, { ...init, headers: { ...init.headers, "Accept-Language": locale() } });

/** The language chosen on this device (the switcher, or ?lang=), if any. */
export function savedChoice() {
  const m = document.cookie.match(new RegExp(`(?:^|; )${LOCALE_COOKIE}=(\\w+)`));
  return m ? m[1] : null;
}

export function rememberChoice(code) {
  document.cookie = `${LOCALE_COOKIE}=${code}; Path=/; Max-Age=31536000; SameSite=Lax`;
}

/** `?lang=` in the address counts as a choice, like the switcher. */
export function adoptAddressChoice() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked && asked === locale()) rememberChoice(asked);
}

export function formatDate(iso, options = { dateStyle: "medium", timeStyle: "short" }) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : new Intl.DateTimeFormat(locale(), options).format(date);
}

/** The connection pill: its state for styling, its word for people. */
export function showConnection(state) {
  document.getElementById("conn-state").dataset.state = state;
  const text = document.getElementById("conn-text");
  text.dataset.i18n = has(`conn.${state}`) ? `conn.${state}` : "conn.idle";
  text.textContent = t(text.dataset.i18n);
}
