// The audit log: newest first, filtered by experiment (server side), action and actor.

import { call } from "./api.js";
import { attempt, errorSlot, h, loading, pagedTable, replace, shortId, when } from "./ui.js";

export async function auditPage(view) {
  const params = new URLSearchParams(location.hash.split("?")[1] ?? "");
  const slot = errorSlot("Audit log error");
  const key = h("input", { id: "audit-key", name: "key", placeholder: "any experiment" });
  const action = h("select", { id: "audit-action", name: "action" }, h("option", { value: "" }, "any action"));
  const actor = h("input", { id: "audit-actor", name: "actor", placeholder: "actor id prefix" });
  const list = h("div", {}, loading());
  let entries = [];
  const show = () => {
    const shown = entries.filter((e) => (!action.value || e.action === action.value) && (!actor.value.trim() || (e.actor_id ?? "").startsWith(actor.value.trim())));
    replace(list, auditTable(shown, { showExperiment: true, size: 25 }));
  };
  const load = async () => {
    replace(list, loading());
    const body = { max_rows: 1000 };
    if (key.value.trim()) body.key = key.value.trim();
    const got = await attempt(slot, "Loading the audit log", () => call("admin-audit-log", body));
    entries = got ?? [];
    const actions = [...new Set(entries.map((e) => e.action))].sort();
    const chosen = action.value;
    replace(action, h("option", { value: "" }, "any action"), actions.map((a) => h("option", { value: a, selected: a === chosen }, a)));
    show();
  };
  action.addEventListener("change", show);
  actor.addEventListener("input", show);
  key.value = params.get("key") ?? "";
  replace(view, h("h1", {}, "Audit log"),
    h("form", { class: "filters", "aria-label": "Filter the audit log", onsubmit: (event) => { event.preventDefault(); load(); } },
      h("label", { for: "audit-key" }, "Experiment"), key,
      h("label", { for: "audit-action" }, "Action"), action,
      h("label", { for: "audit-actor" }, "Actor"), actor,
      h("button", { type: "submit", class: "secondary" }, "Apply")),
    slot, list);
  await load();
}

export function auditTable(entries, { showExperiment, size }) {
  const head = ["When", ...(showExperiment ? ["Experiment"] : []), "Action", "Actor", "What changed"];
  return pagedTable({
    head, size, label: "Audit entries",
    empty: "No audit entry matches: every state change is recorded here as it happens.",
    rows: entries.map((e) => () => h("tr", {},
      h("td", {}, when(e.created_at)),
      showExperiment ? h("td", {}, e.experiment_key ? h("a", { href: `#/experiments/${encodeURIComponent(e.experiment_key)}` }, e.experiment_key) : "—") : null,
      h("td", {}, h("code", {}, e.action)),
      h("td", {}, shortId(e.actor_id)),
      h("td", { class: "details" }, describe(e.details)))),
  });
}

function describe(details) {
  if (!details || typeof details !== "object") return "";
  const parts = [];
  const { before, after, ...rest } = details;
  delete rest.experiment_key;
  if (before || after) {
    const keys = new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})]);
    for (const k of keys) {
      const b = before?.[k] ?? null;
      const a = after?.[k] ?? null;
      if (!before && (a === null || ["id", "salt", "created_at", "updated_at"].includes(k))) continue;
      if (JSON.stringify(a) === JSON.stringify(b)) continue;
      parts.push(h("div", {}, h("strong", {}, k), ": ", before ? `${short(b)} → ` : "", short(a)));
    }
  }
  for (const [k, v] of Object.entries(rest)) {
    if (k === "changes" && v && typeof v === "object") {
      for (const [field, change] of Object.entries(v)) parts.push(line(field, change));
    } else {
      parts.push(line(k, v));
    }
  }
  return parts;
}

// "field: value", or "field: before → after" for a {before, after} pair.
function line(field, value) {
  if (value && typeof value === "object" && !Array.isArray(value) && ("before" in value || "after" in value)) {
    return h("div", {}, h("strong", {}, field), ": ", `${short(value.before)} → ${short(value.after)}`);
  }
  return h("div", {}, h("strong", {}, field), ": ", short(value));
}

function short(value) {
  if (value === undefined || value === null) return "—";
  if (Array.isArray(value) && value.every((v) => v && typeof v === "object" && "name" in v)) {
    return value.map((v) => `${v.name} ${v.weight}`).join(", ");
  }
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}
