// Small DOM helpers shared by the pages: an element builder, badges, dates,
// error boxes placed next to what caused them, confirmations, paging.

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

export function badge(status) {
  return h("span", { class: `badge badge-${status}` }, status);
}

// A timestamp in the viewer's locale, with the UTC time on hover.
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const date = new Date(iso);
  return h("time", { datetime: iso, title: `${date.toISOString().replace("T", " ").slice(0, 19)} UTC` },
    date.toLocaleString());
}

export function shortId(id) {
  return id ? h("code", { title: id }, id.slice(0, 8)) : h("span", { class: "muted" }, "—");
}

// Where a function's error is shown: right next to the control that caused it.
export function errorSlot(label) {
  return h("div", { class: "error", role: "alert", hidden: true, "aria-label": label });
}

export function showError(slot, error, cause) {
  const code = error.code ? ` (${error.status || ""} ${error.code})`.replace("( ", "(") : "";
  const hint = error.details?.hint;
  replace(slot, h("strong", {}, cause ? `${cause} failed: ` : ""), error.message, h("span", { class: "muted" }, code),
    hint ? h("div", { class: "hint" }, hint) : null);
  slot.hidden = false;
  slot.scrollIntoView({ block: "nearest" });
}

export function clearError(slot) {
  slot.hidden = true;
  slot.replaceChildren();
}

// Runs `work`, showing any error in `slot`; the button is busy meanwhile.
export async function attempt(slot, cause, work, button) {
  clearError(slot);
  if (button) button.disabled = true;
  try {
    return await work();
  } catch (error) {
    showError(slot, error, cause);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

// A modal that states the consequence; resolves true only on the confirm button.
export function confirmAction({ title, consequence, confirm, danger = false, extra = null }) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-label": title },
      h("h2", {}, title),
      h("p", { class: "consequence" }, consequence),
      extra,
      h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: () => close(false) }, "Cancel"),
        h("button", { type: "button", class: danger ? "danger" : "primary", onclick: () => close(true) }, confirm)));
    function close(value) {
      dialog.close();
      dialog.remove();
      resolve(value);
    }
    dialog.addEventListener("cancel", () => close(false));
    document.body.append(dialog);
    dialog.showModal();
  });
}

// A table whose rows page `size` at a time, with Previous/Next and "x–y of n".
export function pagedTable({ head, rows, size = 20, empty, label }) {
  const body = h("tbody");
  const status = h("span", { class: "muted pager-status" });
  const previous = h("button", { type: "button", class: "secondary", onclick: () => show(page - 1) }, "Previous");
  const next = h("button", { type: "button", class: "secondary", onclick: () => show(page + 1) }, "Next");
  let page = 0;
  function show(target) {
    const pages = Math.max(1, Math.ceil(rows.length / size));
    page = Math.min(Math.max(0, target), pages - 1);
    const slice = rows.slice(page * size, page * size + size);
    replace(body, slice.length ? slice.map((row) => row()) :
      h("tr", {}, h("td", { colspan: head.length, class: "empty" }, empty)));
    status.textContent = rows.length ? `${page * size + 1}–${page * size + slice.length} of ${rows.length}` : "";
    previous.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }
  show(0);
  const pager = rows.length > size ? h("div", { class: "pager" }, previous, status, next) : h("div", { class: "pager" }, status);
  return h("div", { class: "table-wrap" },
    h("table", { "aria-label": label }, h("thead", {}, h("tr", {}, head.map((name) => h("th", { scope: "col" }, name)))), body),
    pager);
}

export function fmt(value, digits = 3) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return String(value);
  return Number.isInteger(value) ? value.toLocaleString() : value.toFixed(digits);
}

export function pct(value, digits = 1) {
  if (value === null || value === undefined) return "—";
  return `${(value * 100).toFixed(digits)}%`;
}

export function loading(text = "Loading…") {
  return h("p", { class: "muted", role: "status" }, text);
}
