// Experiments: the list (status filter, search, paging, users per variant) and
// the create/edit form with its variant editor.

import { call, canWrite, me } from "./api.js";
import { attempt, badge, clearError, errorSlot, h, loading, pagedTable, pct, replace, showError, when } from "./ui.js";

const STATUSES = ["", "draft", "active", "ended"];

export async function listPage(view) {
  const params = new URLSearchParams(location.hash.split("?")[1] ?? "");
  const status = params.get("status") ?? "";
  const query = params.get("q") ?? "";
  const slot = errorSlot("Experiments error");
  const results = h("div", {}, loading());
  const statusSelect = h("select", { id: "status-filter", name: "status" },
    STATUSES.map((s) => h("option", { value: s, selected: s === status }, s || "any status")));
  const search = h("input", { id: "search", type: "search", name: "q", value: query, placeholder: "key or name" });
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter experiments", onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    if (statusSelect.value) next.set("status", statusSelect.value);
    if (search.value.trim()) next.set("q", search.value.trim());
    location.hash = `#/experiments${next.size ? `?${next}` : ""}`;
  } },
  h("label", { for: "status-filter" }, "Status"), statusSelect,
  h("label", { for: "search" }, "Search"), search,
  h("button", { type: "submit", class: "secondary" }, "Filter"));
  statusSelect.addEventListener("change", () => form.requestSubmit());

  replace(view,
    h("div", { class: "page-head" }, h("h1", {}, "Experiments"),
      canWrite() ? h("a", { class: "button primary", href: "#/experiments/new" }, "New experiment") : null),
    form, slot, results);

  const experiments = await attempt(slot, "Loading experiments",
    () => call("admin-list-experiments", status ? { status } : {}));
  if (!experiments) {
    replace(results);
    return;
  }
  const needle = query.toLowerCase();
  const shown = experiments.filter((e) => !needle || e.key.includes(needle) || (e.name ?? "").toLowerCase().includes(needle));
  // The list carries the kept counts per variant; older servers did not, so fetch those one by one.
  const counts = new Map(shown.filter((e) => e.assignment_counts).map((e) => [e.key, e.assignment_counts]));
  const rows = shown.map((e) => () => {
    const users = h("td", { class: "variants" }, variantSummary(e, counts.get(e.key)));
    if (!counts.has(e.key)) {
      counts.set(e.key, null);
      // Only the counts are needed here: a one-day window keeps the metrics part small.
      const today = new Date().toISOString().slice(0, 10);
      call("admin-get-experiment", { key: e.key, from_day: today, to_day: today }).then((full) => {
        counts.set(e.key, full.assignment_counts);
        replace(users, variantSummary(e, full.assignment_counts));
      }, (error) => replace(users, variantSummary(e), h("span", { class: "error-inline" }, error.message)));
    }
    return h("tr", {},
      h("td", {}, h("a", { href: `#/experiments/${encodeURIComponent(e.key)}` }, e.key), h("div", { class: "muted" }, e.name ?? "")),
      h("td", {}, badge(e.status)),
      users,
      h("td", { class: "num" }, e.assigned_users.toLocaleString(), e.manual_users ? h("div", { class: "muted" }, `${e.manual_users} manual`) : null),
      h("td", {}, when(e.started_at)));
  });
  const empty = experiments.length
    ? "No experiment matches this filter: clear the search or pick another status."
    : canWrite() ? "No experiments yet: create one with “New experiment”." : "No experiments yet: an admin creates them.";
  replace(results, pagedTable({
    head: ["Experiment", "Status", "Variants (weight · share · users)", "Users", "Started"],
    rows, size: 20, empty, label: "Experiments",
  }));
}

function variantSummary(experiment, counts) {
  const total = experiment.variants.reduce((sum, v) => sum + v.weight, 0) || 1;
  return h("ul", { class: "plain" }, experiment.variants.map((v) => {
    const users = counts?.find((c) => c.variant === v.name)?.total;
    return h("li", {}, h("strong", {}, v.name), ` ${v.weight} · ${pct(v.weight / total, 0)}`,
      users === undefined ? null : h("span", { class: "muted" }, ` · ${users.toLocaleString()} users`));
  }));
}

// Create (key === null) or edit an experiment.
export async function editPage(view, key) {
  if (!canWrite()) {
    replace(view, h("h1", {}, "Read only"), h("p", {}, "Your role is viewer: you can look but not change experiments."));
    return;
  }
  const slot = errorSlot("Experiment error");
  let experiment = null;
  if (key) {
    replace(view, loading());
    experiment = await attempt(slot, "Loading the experiment", () => call("admin-get-experiment", { key }));
    if (!experiment) {
      replace(view, h("h1", {}, `Edit ${key}`), slot);
      return;
    }
  }
  const draft = !experiment || experiment.status === "draft";
  const keyInput = h("input", { id: "key", name: "key", required: true, pattern: "[a-z0-9][a-z0-9_.\\-]{0,63}",
    value: experiment?.key ?? "", disabled: Boolean(experiment), "aria-describedby": "key-help" });
  const keySlot = errorSlot("Key error");
  const name = h("input", { id: "name", name: "name", value: experiment?.name ?? "" });
  const description = h("textarea", { id: "description", name: "description", rows: 2 }, experiment?.description ?? "");
  const interval = h("input", { id: "rotation", name: "rotation", placeholder: "e.g. 7 days (empty: never)",
    value: experiment?.salt_rotation_interval ?? "" });
  const variants = variantEditor(experiment?.variants ?? [{ name: "control", weight: 50 }, { name: "treatment", weight: 50 }], draft);
  const button = h("button", { type: "submit", class: "primary" }, experiment ? "Save changes" : "Create draft");

  const form = h("form", { class: "card", "aria-label": experiment ? "Edit experiment" : "New experiment", onsubmit: async (event) => {
    event.preventDefault();
    const body = { admin_id: me() };
    if (name.value.trim() || experiment?.name) body.name = name.value.trim();
    if (description.value.trim() || experiment?.description) body.description = description.value.trim();
    if (interval.value.trim()) body.salt_rotation_interval = interval.value.trim();
    if (draft) body.variants = variants.value();
    // A duplicate key is the key's fault; anything else (bad weights, variants
    // locked because someone activated it meanwhile, …) shows by the variants and Save.
    clearError(keySlot);
    clearError(slot);
    button.disabled = true;
    try {
      const saved = experiment
        ? await call("admin-update-experiment", { key: experiment.key, ...body })
        : await call("admin-create-experiment", { key: keyInput.value.trim(), ...body });
      location.hash = `#/experiments/${encodeURIComponent(saved.key)}`;
    } catch (error) {
      const keyFault = !experiment && (error.code === "23505" || /\bkey\b/.test(error.message) && !/variant/.test(error.message));
      showError(keyFault ? keySlot : slot, error, experiment ? "Saving" : "Creating");
    } finally {
      button.disabled = false;
    }
  } },
  h("h1", {}, experiment ? h("span", {}, `Edit ${experiment.key} `, badge(experiment.status)) : "New experiment"),
  h("label", { for: "key" }, "Key"), keyInput,
  h("p", { id: "key-help", class: "muted" }, "Lower-case letters, digits, _ . - ; it names the experiment in request_context.experiments and cannot change."),
  keySlot,
  h("label", { for: "name" }, "Name"), name,
  h("label", { for: "description" }, "Description"), description,
  h("label", { for: "rotation" }, "Salt rotation interval"), interval,
  variants.element,
  h("div", { class: "actions" },
    h("a", { class: "button secondary", href: experiment ? `#/experiments/${encodeURIComponent(experiment.key)}` : "#/experiments" }, "Cancel"),
    button),
  slot);
  replace(view, form);
}

// The variant rows with the normalised share of each shown live; read-only after draft.
function variantEditor(initial, editable) {
  const body = h("tbody");
  const total = h("span", { "data-testid": "weight-total" });
  const rows = [];

  function update() {
    const sum = rows.reduce((s, r) => s + (Number(r.weight.value) || 0), 0);
    for (const r of rows) {
      const w = Number(r.weight.value) || 0;
      r.share.textContent = sum > 0 ? pct(w / sum) : "—";
    }
    total.textContent = `total weight ${sum}`;
  }

  function addRow(variant) {
    const index = rows.length + 1;
    const nameInput = h("input", { name: "variant-name", "aria-label": `Variant ${index} name`, value: variant.name, required: true,
      pattern: "[A-Za-z0-9_.\\-]{1,64}", disabled: !editable });
    const weight = h("input", { name: "variant-weight", type: "number", min: 0, step: "any", "aria-label": `Variant ${index} weight`,
      value: variant.weight, required: true, disabled: !editable, oninput: update });
    const share = h("output", { "aria-label": `Variant ${index} share` });
    const row = { nameInput, weight, share };
    const remove = editable ? h("button", { type: "button", class: "secondary small", "aria-label": `Remove variant ${index}`, onclick: () => {
      rows.splice(rows.indexOf(row), 1);
      row.tr.remove();
      update();
    } }, "Remove") : null;
    row.tr = h("tr", {}, h("td", {}, nameInput), h("td", {}, weight), h("td", { class: "num" }, share), h("td", {}, remove));
    rows.push(row);
    body.append(row.tr);
    update();
  }
  initial.forEach(addRow);

  const element = h("fieldset", { class: "variants-editor" },
    h("legend", {}, "Variants"),
    editable ? h("p", { class: "muted" }, "The first variant is the baseline. Shares are the weights normalised to 100%.")
      : h("p", { class: "notice" }, "Variants are locked: they can change only while the experiment is a draft."),
    h("table", { "aria-label": "Variants" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Weight"),
        h("th", { scope: "col" }, "Share"), h("th", {}, h("span", { class: "sr-only" }, "Remove")))), body),
    h("div", { class: "row" },
      editable ? h("button", { type: "button", class: "secondary", onclick: () => addRow({ name: "", weight: 0 }) }, "Add variant") : null,
      total));

  return {
    element,
    value: () => rows.map((r) => ({ name: r.nameInput.value.trim(), weight: Number(r.weight.value) })),
  };
}
