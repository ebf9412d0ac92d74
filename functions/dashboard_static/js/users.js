// Users: search by id or e-mail prefix; one user's experiments (auto or manual,
// who pinned it, what the rule would give); force a variant or reset to auto.

import { call, canWrite, me } from "./api.js";
import { attempt, badge, errorSlot, h, loading, pagedTable, replace, shortId, when } from "./ui.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function usersPage(view, userId) {
  const slot = errorSlot("User search error");
  const query = h("input", { id: "user-query", type: "search", name: "query", required: true, value: userId ?? "",
    placeholder: "user id (uuid) or e-mail prefix" });
  const button = h("button", { type: "submit", class: "primary" }, "Search");
  const found = h("div");
  const detail = h("div");
  const form = h("form", { class: "filters", role: "search", "aria-label": "Search users", onsubmit: async (event) => {
    event.preventDefault();
    const q = query.value.trim();
    replace(detail);
    const users = await attempt(slot, "Search", () => call("admin-search-users", { query: q, max_rows: 100 }), button);
    if (!users) return;
    if (users.length === 1 && UUID.test(q)) {
      location.hash = `#/users/${users[0].user_id}`;
      return;
    }
    replace(found, pagedTable({
      head: ["User", "E-mail", "Experiments", "Signed up"],
      label: "Users found",
      empty: UUID.test(q) ? "No user with this id has an assignment or an account." : "No user's e-mail starts with this.",
      rows: users.map((u) => () => h("tr", {},
        h("td", {}, h("a", { href: `#/users/${u.user_id}` }, u.user_id)), h("td", {}, u.email ?? "—"),
        h("td", { class: "num" }, u.assignments), h("td", {}, when(u.created_at)))),
    }));
  } },
  h("label", { for: "user-query" }, "User"), query, button, slot);
  replace(view, h("h1", {}, "Users"), form, found, detail);
  if (userId) await userDetail(detail, userId);
}

async function userDetail(section, userId) {
  const slot = errorSlot("User error");
  replace(section, loading());
  const [assignments, experiments, found] = await Promise.all([
    attempt(slot, "Loading the user's experiments", () => call("admin-user-assignments", { user_id: userId })),
    canWrite() ? attempt(slot, "Loading experiments", () => call("admin-list-experiments", {})) : Promise.resolve([]),
    UUID.test(userId) ? call("admin-search-users", { query: userId, max_rows: 1 }).catch(() => []) : Promise.resolve([]),
  ]);
  const reload = () => userDetail(section, userId);
  const email = found?.[0]?.email;
  replace(section, h("h2", {}, "User ", h("code", {}, userId), email ? h("span", { class: "muted" }, ` ${email}`) : null), slot);
  if (!assignments) return;
  const head = ["Experiment", "Status", "Variant", "Mode", "Pinned by", "Assigned", "Rule would give"];
  if (canWrite()) head.push("Actions");
  section.append(pagedTable({
    head, label: "User's experiments",
    empty: "This user is in no experiment yet: the recommender assigns them on their next request, or force a variant below.",
    rows: assignments.map((a) => () => h("tr", { dataset: { key: a.key } },
      h("td", {}, h("a", { href: `#/experiments/${encodeURIComponent(a.key)}` }, a.key)),
      h("td", {}, badge(a.status)),
      h("td", {}, h("strong", {}, a.variant)),
      h("td", {}, h("span", { class: `mode mode-${a.assignment_mode}` }, a.assignment_mode)),
      h("td", {}, a.assigned_by ? (a.assigned_by === me() ? "you" : shortId(a.assigned_by)) : "—"),
      h("td", {}, when(a.assigned_at)),
      h("td", {}, a.rule_variant ?? "—"),
      canWrite() ? h("td", {}, a.assignment_mode === "manual" ? resetButton(a, userId, reload) : null) : null)),
  }));
  if (canWrite() && experiments) section.append(forceForm(experiments.filter((e) => e.status !== "ended"), userId, reload));
}

function resetButton(a, userId, reload) {
  const slot = errorSlot("Reset error");
  const button = h("button", { type: "button", class: "secondary small", onclick: async () => {
    const done = await attempt(slot, "Reset to auto", () => call("admin-reset-user-variant", { key: a.key, user_id: userId, admin_id: me() }), button);
    if (done !== undefined) reload();
  } }, "Reset to auto");
  return h("div", {}, button, slot);
}

function forceForm(experiments, userId, reload) {
  const slot = errorSlot("Force variant error");
  const experimentSelect = h("select", { id: "force-experiment", name: "experiment", required: true },
    experiments.map((e) => h("option", { value: e.key }, `${e.key} (${e.status})`)));
  const variantSelect = h("select", { id: "force-variant", name: "variant", required: true });
  const fill = () => {
    const chosen = experiments.find((e) => e.key === experimentSelect.value);
    replace(variantSelect, (chosen?.variants ?? []).map((v) => h("option", { value: v.name }, v.name)));
  };
  experimentSelect.addEventListener("change", fill);
  fill();
  const button = h("button", { type: "submit", class: "primary" }, "Force variant");
  return h("form", { class: "card", "aria-label": "Force a variant", onsubmit: async (event) => {
    event.preventDefault();
    const done = await attempt(slot, "Force variant", () => call("admin-set-user-variant", {
      key: experimentSelect.value, user_id: userId, variant: variantSelect.value, admin_id: me(),
    }), button);
    if (done !== undefined) reload();
  } },
  h("h3", {}, "Force a variant"),
  h("p", { class: "muted" }, "Pins this user (a manual override, audited); the assignment rule no longer applies to them until you reset."),
  h("div", { class: "row" },
    h("label", { for: "force-experiment" }, "Experiment"), experimentSelect,
    h("label", { for: "force-variant" }, "Variant"), variantSelect, button),
  slot);
}
