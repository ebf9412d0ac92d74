// Daily charts per variant (plotly.js, served from the installed plotly package).

import { h, pct, replace } from "./ui.js";

let plotly = null;

// The bundle is big: load it the first time a chart is drawn.
function loadPlotly() {
  plotly ??= new Promise((resolve, reject) => {
    if (window.Plotly) return resolve(window.Plotly);
    const script = h("script", { src: "vendor/plotly.min.js" });
    script.addEventListener("load", () => resolve(window.Plotly));
    script.addEventListener("error", () => {
      plotly = null;
      reject(new Error("The chart library (vendor/plotly.min.js) could not be loaded."));
    });
    document.head.append(script);
  });
  return plotly;
}

const CHARTS = [
  ["impressions", "Impressions per day", (r) => r.impressions, ",d"],
  ["users", "Users per day", (r) => r.users, ",d"],
  ["engagement", "Engagement rate (engaged impressions ÷ impressions)", (r) => (r.impressions ? r.engaged_impressions / r.impressions : null), ".1%"],
];

export async function drawCharts(section, experiment) {
  const rows = experiment.daily_metrics ?? [];
  if (!rows.length) {
    const hint = experiment.status === "draft"
      ? "Nothing to chart yet: activate the experiment, then tag impressions with its variant."
      : "No impression carries this experiment's tag yet: store the map from rec_assign_variants in request_context.experiments when you log impressions.";
    replace(section, h("h2", {}, "Daily metrics"), h("p", { class: "empty" }, hint));
    return;
  }
  const days = [...new Set(rows.map((r) => r.day))].sort();
  const names = experiment.variants.map((v) => v.name);
  const holders = CHARTS.map(([id, title]) => h("figure", { class: "chart" },
    h("div", { id: `chart-${id}`, class: "plot", role: "img", "aria-label": title }), h("figcaption", {}, title)));
  replace(section, h("h2", {}, "Daily metrics"), h("div", { class: "charts" }, holders), dailyTable(rows, names));
  let Plotly;
  try {
    Plotly = await loadPlotly();
  } catch (error) {
    section.append(h("div", { class: "error", role: "alert" }, error.message));
    return;
  }
  CHARTS.forEach(([id, title, value, format], i) => {
    const traces = names.map((name) => {
      const byDay = new Map(rows.filter((r) => r.variant === name).map((r) => [r.day, r]));
      return {
        name, x: days, y: days.map((d) => (byDay.has(d) ? value(byDay.get(d)) : 0)),
        type: "scatter", mode: "lines+markers",
      };
    });
    Plotly.newPlot(holders[i].querySelector(".plot"), traces, {
      margin: { l: 50, r: 10, t: 10, b: 40 }, height: 220, legend: { orientation: "h", y: -0.25 },
      yaxis: { tickformat: format, rangemode: "tozero" },
      // One tick per day for short series, plotly's own spacing for long ones.
      xaxis: { type: "date", tickformat: "%b %d", ...(days.length <= 10 ? { dtick: 86400000 } : {}) },
    }, { displayModeBar: false, responsive: true });
  });
}

function dailyTable(rows, names) {
  const order = new Map(names.map((n, i) => [n, i]));
  const sorted = [...rows].sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : order.get(a.variant) - order.get(b.variant)));
  return h("details", {},
    h("summary", {}, "Daily numbers"),
    h("table", { "aria-label": "Daily numbers" },
      h("thead", {}, h("tr", {}, ["Day (UTC)", "Variant", "Impressions", "Users", "Engaged impressions", "Outcomes", "Engagement rate"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, sorted.map((r) => h("tr", {},
        h("td", {}, r.day), h("td", {}, r.variant), h("td", { class: "num" }, r.impressions), h("td", { class: "num" }, r.users),
        h("td", { class: "num" }, r.engaged_impressions), h("td", { class: "num" }, r.outcomes),
        h("td", { class: "num" }, r.impressions ? pct(r.engaged_impressions / r.impressions) : "—"))))));
}
