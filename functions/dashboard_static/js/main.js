// The shell: who is signed in (always visible), the page navigation, and a
// hash router that draws one page into <main>.

import { loadConfig, session, signIn, signOut } from "./api.js";
import { auditPage } from "./audit.js";
import { experimentPage } from "./experiment.js";
import { editPage, listPage } from "./experiments.js";
import { attempt, errorSlot, h, replace } from "./ui.js";
import { usersPage } from "./users.js";

const view = document.getElementById("view");
const nav = document.getElementById("nav");
const who = document.getElementById("who");

const ROUTES = [
  [/^#\/experiments\/new$/, () => editPage(view, null)],
  [/^#\/experiments\/([^/]+)\/edit$/, (key) => editPage(view, decodeURIComponent(key))],
  [/^#\/experiments\/([^/]+)$/, (key) => experimentPage(view, decodeURIComponent(key))],
  [/^#\/experiments(?:\?(.*))?$/, () => listPage(view)],
  [/^#\/users(?:\/([^/]+))?$/, (id) => usersPage(view, id ? decodeURIComponent(id) : null)],
  [/^#\/audit$/, () => auditPage(view)],
];

function header() {
  const current = session();
  nav.hidden = !current;
  if (!current) {
    replace(who);
    return;
  }
  replace(who,
    h("span", { class: "person", "data-testid": "person" }, current.user?.email ?? current.user?.id),
    h("span", { class: `role role-${current.role}`, "data-testid": "role" }, current.role),
    h("button", { type: "button", class: "secondary", onclick: async () => {
      await signOut();
      location.hash = "#/experiments";
      route();
    } }, "Sign out"));
  for (const link of nav.querySelectorAll("a")) {
    const active = (location.hash || "#/experiments").startsWith(link.getAttribute("href"));
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function signInPage(message) {
  const slot = errorSlot("Sign-in error");
  const email = h("input", { id: "email", type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", { id: "password", type: "password", name: "password", autocomplete: "current-password", required: true });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "card narrow", "aria-label": "Sign in", onsubmit: async (event) => {
    event.preventDefault();
    const done = await attempt(slot, "Sign in", () => signIn(email.value.trim(), password.value), button);
    if (done) route();
  } },
  h("h1", {}, "Sign in"),
  h("p", { class: "muted" }, "Use your Supabase Auth account. An admin grants access with ",
    h("code", {}, "recsys-exp admin grant EMAIL"), "."),
  message ? h("p", { class: "notice" }, message) : null,
  h("label", { for: "email" }, "E-mail"), email,
  h("label", { for: "password" }, "Password"), password,
  h("div", { class: "actions" }, button), slot);
  replace(view, form);
  email.focus();
}

async function route() {
  header();
  if (!session()) {
    signInPage();
    return;
  }
  const hash = location.hash || "#/experiments";
  for (const [pattern, draw] of ROUTES) {
    const match = hash.match(pattern);
    if (match) {
      await draw(...match.slice(1));
      header();
      return;
    }
  }
  replace(view, h("h1", {}, "Not found"), h("p", {}, "No such page. ", h("a", { href: "#/experiments" }, "Back to experiments")));
}

window.addEventListener("hashchange", route);
window.addEventListener("session-expired", () => {
  // A 401 from a function: the session is no longer valid; ask to sign in again.
  if (session()) {
    sessionStorage.clear();
    header();
    signInPage("Your session ended (expired or revoked): sign in again.");
  }
});

loadConfig().then(route, (error) => {
  replace(view, h("div", { class: "error", role: "alert" }, `The dashboard cannot start: ${error.message}`));
});

