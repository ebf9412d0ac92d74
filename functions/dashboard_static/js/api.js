// The only two things the dashboard talks to: Supabase Auth (sign in, refresh,
// sign out) and the admin functions at /functions/v1/<name>, with the signed-in
// person's access token. The session lives in sessionStorage, so it ends with
// the tab; no secret key is ever here.

const STORE = "recsys-exp.session";
let config = null;

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export async function loadConfig() {
  if (!config) {
    const response = await fetch("config.json", { headers: { accept: "application/json" } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new ApiError(response.status, body.error?.code ?? "misconfigured",
        body.error?.message ?? "The dashboard's configuration could not be loaded.");
    }
    config = body;
  }
  return config;
}

export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE) ?? "null");
  } catch {
    return null;
  }
}

function store(value) {
  if (value) sessionStorage.setItem(STORE, JSON.stringify(value));
  else sessionStorage.removeItem(STORE);
}

async function auth(path, { method = "POST", body, token } = {}) {
  const { supabase_url: url, publishable_key: key } = await loadConfig();
  const headers = { apikey: key, "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(`${url}/auth/v1/${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "Supabase Auth could not be reached: check your connection and try again.");
  }
  const text = await response.text();
  const payload = text ? JSON.parse(text) : {};
  if (!response.ok) {
    const message = payload.error_description ?? payload.msg ?? payload.message ?? payload.error
      ?? `Supabase Auth answered ${response.status}.`;
    throw new ApiError(response.status, payload.error_code ?? payload.error ?? "auth_error", message);
  }
  return payload;
}

function fromGrant(grant) {
  return {
    access_token: grant.access_token,
    refresh_token: grant.refresh_token,
    expires_at: grant.expires_at ?? Math.floor(Date.now() / 1000) + (grant.expires_in ?? 3600),
    user: { id: grant.user?.id, email: grant.user?.email },
  };
}

export async function signIn(email, password) {
  const grant = await auth("token?grant_type=password", { body: { email, password } });
  const fresh = fromGrant(grant);
  store(fresh);
  try {
    const who = await call("admin-whoami", {});
    fresh.role = who.role;
    fresh.user = { id: who.user_id ?? fresh.user.id, email: who.email ?? fresh.user.email };
    store(fresh);
  } catch (error) {
    // Signed in, but not an admin (or the functions are down): end that session too.
    store(null);
    await auth("logout", { token: fresh.access_token }).catch(() => {});
    throw error;
  }
  return fresh;
}

export async function signOut() {
  const current = session();
  store(null);
  if (current) {
    // Revokes the refresh token; the page forgets the session either way.
    await auth("logout", { token: current.access_token }).catch(() => {});
  }
}

async function freshToken() {
  const current = session();
  if (!current) throw new ApiError(401, "signed_out", "You are signed out: sign in again.");
  if (current.expires_at - 60 > Date.now() / 1000) return current.access_token;
  const grant = await auth("token?grant_type=refresh_token", { body: { refresh_token: current.refresh_token } });
  const renewed = { ...fromGrant(grant), role: current.role };
  store(renewed);
  return renewed.access_token;
}

// POST /functions/v1/<name>: the answer's `data`, or an ApiError with the function's message.
export async function call(name, body = {}) {
  const { publishable_key: key } = await loadConfig();
  const token = await freshToken();
  let response;
  try {
    response = await fetch(`/functions/v1/${name}`, {
      method: "POST",
      headers: { apikey: key, authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", `The admin functions could not be reached (${name}): check the server.`);
  }
  const payload = await response.json().catch(() => null);
  if (!response.ok || !payload || !("data" in payload)) {
    const error = payload?.error ?? {};
    if (response.status === 401) window.dispatchEvent(new CustomEvent("session-expired"));
    throw new ApiError(response.status, error.code ?? "error",
      error.message ?? `${name} answered ${response.status} without a message.`, error.details);
  }
  return payload.data;
}

// admin_id for writes: the signed-in person, as the functions require.
export function me() {
  return session()?.user?.id;
}

export function canWrite() {
  return session()?.role === "admin";
}
