// Offline viewer for /openapi.json: lists every route with its parameters, body, responses and
// error codes, and every schema. Builds DOM nodes with textContent only (no innerHTML), so
// nothing in the document can inject markup.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function refName(schema) {
  return schema && schema.$ref ? schema.$ref.split("/").pop() : null;
}

function schemaLink(schema) {
  const name = refName(schema);
  if (name) return el("a", { href: "#schema-" + name }, name);
  return el("code", {}, JSON.stringify(schema));
}

function table(head, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c))))));
}

function renderOperation(path, method, op) {
  const body = el("div", { class: "body" });
  if (op.description) body.append(el("p", {}, op.description));
  if (op.parameters && op.parameters.length) {
    body.append(el("h4", {}, "Parameters"), table(["name", "in", "required", "schema"],
      op.parameters.map((p) => [p.name, p.in, p.required ? "yes" : "no", schemaLink(p.schema)])));
  }
  if (op.requestBody) {
    body.append(el("h4", {}, "Body"), schemaLink(op.requestBody.content["application/json"].schema));
  }
  const responses = Object.entries(op.responses || {}).map(([status, r]) => {
    const content = r.content && r.content["application/json"];
    return [status, content ? schemaLink(content.schema) : "—", (r["x-error-codes"] || []).join(", ") || r.description];
  });
  body.append(el("h4", {}, "Responses"), table(["status", "body", "codes / meaning"], responses));
  const locked = op.security && op.security.length ? el("span", { class: "lock" }, "bearer") : null;
  const details = el("details", { "data-search": (path + " " + method + " " + op.summary).toLowerCase() },
    el("summary", {}, el("span", { class: "method " + method }, method.toUpperCase()),
      el("span", { class: "path" }, path), el("span", {}, op.summary || ""), locked),
    body);
  return details;
}

function renderSchema(name, schema) {
  return el("details", { id: "schema-" + name, "data-search": name.toLowerCase() },
    el("summary", {}, el("code", {}, name)),
    el("div", { class: "body" }, el("pre", {}, JSON.stringify(schema, null, 2))));
}

function applyFilter(text) {
  const needle = text.trim().toLowerCase();
  for (const node of document.querySelectorAll("[data-search]")) {
    node.classList.toggle("hidden", needle !== "" && !node.dataset.search.includes(needle));
  }
}

async function main() {
  const routes = document.getElementById("routes");
  let spec;
  try {
    const response = await fetch("/openapi.json", { headers: { accept: "application/json" } });
    if (!response.ok) throw new Error("HTTP " + response.status);
    spec = await response.json();
  } catch (err) {
    routes.replaceChildren(el("p", {}, "Could not load /openapi.json: " + err.message));
    return;
  }
  document.getElementById("title").textContent = spec.info.title;
  document.getElementById("intro").textContent = spec.info.description || "";
  document.getElementById("version").textContent = spec.info.version;
  const ops = [];
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) ops.push(renderOperation(path, method, op));
  }
  routes.replaceChildren(...ops);
  const schemas = spec.components && spec.components.schemas ? spec.components.schemas : {};
  document.getElementById("schemas").replaceChildren(
    ...Object.entries(schemas).map(([name, schema]) => renderSchema(name, schema)));
  document.getElementById("filter").addEventListener("input", (e) => applyFilter(e.target.value));
}

document.addEventListener("DOMContentLoaded", main);
