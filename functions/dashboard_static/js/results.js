// Results: one row per metric and variant against the baseline, with the lift's
// 95% interval drawn around zero, and the health panel (sample ratio, who was
// left out and why, the warnings).

import { call } from "./api.js";
import { attempt, errorSlot, fmt, h, pct, replace } from "./ui.js";

const METRICS = {
  engagement_rate: { label: "Engagement rate", show: (v) => pct(v, 2) },
  outcomes_per_user: { label: "Outcomes per user", show: (v) => fmt(v, 3) },
  engaged_user_rate: { label: "Engaged users", show: (v) => pct(v, 1) },
};
const SVG = "http://www.w3.org/2000/svg";

export async function resultsPanel(section, experiment) {
  if (experiment.status === "draft") {
    replace(section, h("h2", {}, "Results"), h("p", { class: "empty" }, "Results appear once the experiment is active and impressions carry its tag."));
    return;
  }
  const slot = errorSlot("Results error");
  replace(section, h("h2", {}, "Results"), slot);
  const data = await attempt(slot, "Loading the results", () => call("admin-experiment-results", { key: experiment.key }));
  if (!data) return;
  const srm = data.health.srm
    ? h("div", { class: "banner danger", role: "alert" },
      h("strong", {}, "Sample ratio mismatch. "),
      `The users per variant do not match the weights (p = ${fmt(data.health.srm_p_value, 4)}): assignment or logging is broken; don't trust these numbers until it is explained.`)
    : null;
  replace(section, h("h2", {}, "Results"), slot,
    h("p", { class: "muted" }, `Window ${data.from_day} to ${data.to_day} (UTC days). Unit: the user. Baseline: ${data.baseline}.`),
    srm,
    data.summary ? h("p", { class: "summary" }, data.summary) : null,
    data.health.analysed_users ? comparisonTable(data) : h("p", { class: "empty" },
      data.health.assigned_users
        ? "Users are assigned but no impression in this window carries this experiment's tag: store the map from rec_assign_variants in request_context.experiments."
        : "No user is assigned yet: the recommender assigns users when it calls rec_assign_variants."),
    variantTable(data),
    healthPanel(data));
}

function comparisonTable(data) {
  const rows = data.comparisons.map((c) => {
    const metric = METRICS[c.metric] ?? { label: c.metric, show: (v) => fmt(v) };
    // Which way is good is the metric's direction (hides should go down).
    const up = c.lift_ci_low > 0, down = c.lift_ci_high < 0;
    const [good, bad] = c.direction === "decrease" ? [down, up] : [up, down];
    const verdict = good ? "better" : bad ? "worse" : "unclear";
    return h("tr", { class: `verdict-${verdict}`, dataset: { metric: c.metric, variant: c.variant } },
      h("th", { scope: "row" }, metric.label),
      h("td", {}, c.variant),
      h("td", { class: "num" }, metric.show(c.baseline_value)),
      h("td", { class: "num" }, metric.show(c.value)),
      h("td", { class: "lift" }, liftCell(c, verdict)),
      h("td", { class: "num" }, c.p_value === null ? "—" : c.p_value < 0.0001 ? "< 0.0001" : c.p_value.toFixed(4)));
  });
  return h("table", { class: "results", "aria-label": "Results" },
    h("thead", {}, h("tr", {}, ["Metric", "Variant", `Baseline (${data.baseline})`, "Variant value", "Lift (95% interval)", "p-value"]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows));
}

function signed(v) {
  return v === null || v === undefined ? "—" : `${v > 0 ? "+" : ""}${(v * 100).toFixed(1)}%`;
}

function liftCell(c, verdict) {
  const text = h("span", { class: "lift-text" }, signed(c.lift),
    h("span", { class: "muted" }, c.lift_ci_low === null ? "" : ` [${signed(c.lift_ci_low)}, ${signed(c.lift_ci_high)}]`));
  if (c.lift === null || c.lift_ci_low === null) return text;
  // The interval as a bar on an axis symmetric around zero.
  const reach = Math.max(Math.abs(c.lift_ci_low), Math.abs(c.lift_ci_high), 0.01) * 1.15;
  const x = (v) => 100 + (v / reach) * 95;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 200 16");
  svg.setAttribute("class", `ci ci-${verdict}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `lift ${signed(c.lift)}, 95% interval ${signed(c.lift_ci_low)} to ${signed(c.lift_ci_high)}`);
  const add = (tag, attrs) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    svg.append(node);
  };
  add("line", { x1: 100, x2: 100, y1: 0, y2: 16, class: "zero" });
  add("rect", { x: x(c.lift_ci_low), y: 5, width: Math.max(1, x(c.lift_ci_high) - x(c.lift_ci_low)), height: 6, rx: 3, class: "bar" });
  add("circle", { cx: x(c.lift), cy: 8, r: 3.5, class: "point" });
  return h("div", { class: "lift-wrap" }, svg, text);
}

function variantTable(data) {
  const value = (metric, variant) => data.metrics.find((m) => m.metric === metric && m.variant === variant)?.value;
  return h("table", { "aria-label": "Analysed users per variant" },
    h("thead", {}, h("tr", {}, ["Variant", "Weight", "Users", "Impressions", "Engaged impressions", "Outcomes",
      ...Object.values(METRICS).map((m) => m.label)].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, data.variants.map((v) => h("tr", {},
      h("td", {}, v.variant), h("td", { class: "num" }, fmt(v.weight)), h("td", { class: "num" }, fmt(v.users)),
      h("td", { class: "num" }, fmt(v.impressions)), h("td", { class: "num" }, fmt(v.engaged_impressions)),
      h("td", { class: "num" }, fmt(v.outcomes)),
      Object.entries(METRICS).map(([key, m]) => h("td", { class: "num" }, m.show(value(key, v.variant))))))));
}

function healthPanel(data) {
  const hl = data.health;
  const totalWeight = data.variants.reduce((s, v) => s + v.weight, 0) || 1;
  const analysed = hl.analysed_users || 1;
  return h("section", { class: "health", "aria-label": "Health" },
    h("h3", {}, "Health"),
    h("div", { class: "row wrap" },
      h("table", { "aria-label": "Expected and observed split" },
        h("thead", {}, h("tr", {}, ["Variant", "Expected", "Observed"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, data.variants.map((v) => h("tr", {}, h("td", {}, v.variant),
          h("td", { class: "num" }, pct(v.weight / totalWeight)), h("td", { class: "num" }, pct(v.users / analysed)))))),
      h("dl", { class: "counts" },
        h("dt", {}, "Assigned users"), h("dd", {}, fmt(hl.assigned_users)),
        h("dt", {}, "Exposed users"), h("dd", {}, fmt(hl.exposed_users)),
        h("dt", {}, "Analysed users"), h("dd", {}, fmt(hl.analysed_users)),
        h("dt", {}, "Left out: manual override"), h("dd", {}, fmt(hl.overridden_users), h("span", { class: "muted" }, " (pinned by an admin, not randomised)")),
        h("dt", {}, "Left out: saw two variants"), h("dd", {}, fmt(hl.crossover_users), h("span", { class: "muted" }, " (crossover, e.g. after re-bucketing)")),
        h("dt", {}, "Untagged impressions"), h("dd", {}, fmt(hl.untagged_impressions)),
        h("dt", {}, "Sample ratio p-value"), h("dd", {}, hl.srm_p_value === null ? "—" : fmt(hl.srm_p_value, 4), hl.srm ? h("strong", { class: "bad" }, " mismatch") : null))),
    data.warnings.length
      ? h("ul", { class: "warnings", "aria-label": "Warnings" }, data.warnings.map((w) => h("li", {}, w)))
      : h("p", { class: "muted" }, "No warnings."));
}
