// One experiment: what it is, its lifecycle actions (each confirmed with its
// consequence), daily charts, the results with the health panel, its audit trail.

import { call, canWrite, me } from "./api.js";
import { auditTable } from "./audit.js";
import { drawCharts } from "./charts.js";
import { resultsPanel } from "./results.js";
import { attempt, badge, confirmAction, errorSlot, h, loading, pct, replace, when } from "./ui.js";

export async function experimentPage(view, key) {
  const slot = errorSlot("Experiment error");
  replace(view, loading());
  const experiment = await attempt(slot, `Loading ${key}`, () => call("admin-get-experiment", { key }));
  if (!experiment) {
    replace(view, h("h1", {}, key), slot, h("p", {}, h("a", { href: "#/experiments" }, "Back to experiments")));
    return;
  }
  const charts = h("section", { "aria-label": "Daily metrics" }, h("h2", {}, "Daily metrics"));
  const results = h("section", { "aria-label": "Results" }, h("h2", {}, "Results"), loading());
  const audit = h("section", { "aria-label": "Audit trail" }, h("h2", {}, "Audit trail"), loading());

  replace(view,
    h("div", { class: "page-head" },
      h("h1", {}, experiment.key, " ", badge(experiment.status)),
      canWrite() ? actions(experiment, () => experimentPage(view, key)) : null),
    h("p", { class: "lead" }, experiment.name ?? ""),
    experiment.description ? h("p", {}, experiment.description) : null,
    facts(experiment),
    charts, results, audit);

  drawCharts(charts, experiment);
  resultsPanel(results, experiment);
  const trailSlot = errorSlot("Audit trail error");
  const entries = await attempt(trailSlot, "Loading the audit trail", () => call("admin-audit-log", { key, max_rows: 200 }));
  replace(audit, h("h2", {}, "Audit trail"), trailSlot, entries ? auditTable(entries, { showExperiment: false, size: 10 }) : null);
}

function facts(e) {
  const total = e.variants.reduce((sum, v) => sum + v.weight, 0) || 1;
  const counts = new Map(e.assignment_counts.map((c) => [c.variant, c]));
  return h("div", { class: "facts" },
    h("table", { "aria-label": "Variants and assignments" },
      h("thead", {}, h("tr", {}, ["Variant", "Weight", "Share", "Users", "Auto", "Manual"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, e.variants.map((v, i) => {
        const c = counts.get(v.name) ?? { total: 0, auto: 0, manual: 0 };
        return h("tr", {},
          h("td", {}, v.name, i === 0 ? h("span", { class: "muted" }, " (baseline)") : null),
          h("td", { class: "num" }, v.weight), h("td", { class: "num" }, pct(v.weight / total)),
          h("td", { class: "num" }, c.total.toLocaleString()), h("td", { class: "num" }, c.auto.toLocaleString()),
          h("td", { class: "num" }, c.manual.toLocaleString()));
      }))),
    h("dl", {},
      h("dt", {}, "Created"), h("dd", {}, when(e.created_at)),
      h("dt", {}, "Started"), h("dd", {}, when(e.started_at)),
      h("dt", {}, "Ended"), h("dd", {}, when(e.ended_at)),
      h("dt", {}, "Salt rotation"), h("dd", {}, e.salt_rotation_interval ?? "never"),
      h("dt", {}, "Salt rotated"), h("dd", {}, when(e.salt_rotated_at))));
}

function actions(e, reload) {
  const slot = errorSlot("Action error");
  const name = `“${e.key}”`;
  const act = (label, fn, confirmation, danger = false) => {
    const button = h("button", { type: "button", class: danger ? "danger" : "primary", onclick: async () => {
      const extra = confirmation.extra?.();
      if (!(await confirmAction({ title: `${label} ${e.key}?`, consequence: confirmation.text, confirm: label, danger, extra: extra?.element }))) return;
      const done = await attempt(slot, label, () => call(fn, { key: e.key, admin_id: me(), ...(extra?.body() ?? {}) }), button);
      if (done !== undefined) reload();
    } }, label);
    return button;
  };
  const buttons = [];
  if (e.status !== "ended") buttons.push(h("a", { class: "button secondary", href: `#/experiments/${encodeURIComponent(e.key)}/edit` }, "Edit"));
  if (e.status === "draft") {
    buttons.push(act("Activate", "admin-activate-experiment", {
      text: `Activating ${name} starts assigning users to its variants; its variants are locked from then on.`,
    }));
  }
  if (e.status === "active") {
    buttons.push(act("Rotate salt", "admin-rotate-salt", {
      text: `Rotating the salt of ${name} gives it a new random salt: users who already have a variant keep it, new users are bucketed with the new salt.`,
      extra: () => {
        const box = h("input", { type: "checkbox", id: "reassign" });
        const note = h("p", { class: "consequence", hidden: true }, "With re-bucketing, every automatic assignment is deleted: returning users may switch variant. Manual overrides stay.");
        box.addEventListener("change", () => { note.hidden = !box.checked; });
        return { element: h("div", {}, h("label", { class: "check" }, box, " Re-bucket users (delete automatic assignments)"), note),
          body: () => ({ reassign: box.checked }) };
      },
    }));
    buttons.push(act("End", "admin-end-experiment", {
      text: `Ending ${name} stops it for good: no new assignments, and the recommender no longer gets a variant for it. It cannot be restarted.`,
    }, true));
  }
  return h("div", { class: "toolbar" }, h("div", { class: "row" }, buttons), slot);
}
