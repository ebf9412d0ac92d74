// supabase-js against the local stack (`recsys-exp dev`-like), with node's
// own test runner. tests/clients/test_supabase_js.py starts the stack, makes
// the people and passes everything through the environment:
//   STACK_URL, PUBLISHABLE_KEY, SECRET_KEY, CLIENTS_NODE_MODULES,
//   ADMIN_EMAIL, VIEWER_EMAIL, NOBODY_EMAIL, PASSWORD, ADMIN_ID, NOBODY_ID,
//   CASES       [{name, writes, body}] for every function of the registry,
//               writes first in the order they must run,
//   INSERT_USER the user the impression/outcome inserts are made for.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const env = process.env;
const require = createRequire(`${env.CLIENTS_NODE_MODULES}/`);
const { createClient, FunctionsHttpError } = require("@supabase/supabase-js");
const WebSocket = require("ws"); // Node 20 has no global WebSocket for realtime

const CASES = JSON.parse(env.CASES);
const OPTIONS = {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: WebSocket },
};

function client(key = env.PUBLISHABLE_KEY) {
  return createClient(env.STACK_URL, key, OPTIONS);
}

async function signedIn(email) {
  const sb = client();
  const { data, error } = await sb.auth.signInWithPassword({ email, password: env.PASSWORD });
  assert.equal(error, null, `sign-in of ${email}: ${error?.message}`);
  assert.ok(data.session.access_token);
  return sb;
}

async function status(error) {
  assert.ok(error instanceof FunctionsHttpError, `expected an HTTP error, got ${error}`);
  return error.context.status;
}

test("sign in, getClaims, refresh, sign out", async () => {
  const sb = await signedIn(env.NOBODY_EMAIL);
  const first = (await sb.auth.getSession()).data.session;
  const claims = await sb.auth.getClaims();
  assert.equal(claims.error, null, claims.error?.message);
  assert.equal(claims.data.claims.sub, env.NOBODY_ID);
  assert.equal(claims.data.header.alg, "ES256"); // verified against the stack's JWKS

  const refreshed = await sb.auth.refreshSession();
  assert.equal(refreshed.error, null, refreshed.error?.message);
  assert.notEqual(refreshed.data.session.refresh_token, first.refresh_token);
  assert.equal((await sb.auth.getClaims()).data.claims.sub, env.NOBODY_ID);

  const { error } = await sb.auth.signOut();
  assert.equal(error, null, error?.message);
  assert.equal((await sb.auth.getSession()).data.session, null);
  const reuse = await client().auth.refreshSession({ refresh_token: refreshed.data.session.refresh_token });
  assert.ok(reuse.error, "a signed-out session's refresh token must be refused");
});

test("a wrong password is refused", async () => {
  const { data, error } = await client().auth.signInWithPassword({
    email: env.ADMIN_EMAIL,
    password: "not the password",
  });
  assert.equal(data.session, null);
  assert.equal(error.status, 400);
  assert.equal(error.code, "invalid_credentials");
});

test("functions.invoke of every function as an admin", async () => {
  const sb = await signedIn(env.ADMIN_EMAIL);
  for (const { name, body } of CASES) {
    const { data, error } = await sb.functions.invoke(name, { body });
    assert.equal(error, null, `${name}: ${error && (await error.context.text())}`);
    assert.deepEqual(Object.keys(data), ["data"], name);
  }
  const who = await sb.functions.invoke("admin-whoami", { body: {} });
  assert.equal(who.data.data.role, "admin");
});

test("functions.invoke of every function as a viewer: reads answer, writes are 403", async () => {
  const sb = await signedIn(env.VIEWER_EMAIL);
  for (const { name, writes, body } of CASES) {
    const { data, error } = await sb.functions.invoke(name, { body });
    if (writes) {
      assert.equal(await status(error), 403, `${name} as a viewer`);
      assert.equal((await error.context.json()).error.code, "forbidden", name);
    } else {
      assert.equal(error, null, `${name}: ${error && (await error.context.text())}`);
      assert.ok("data" in data, name);
    }
  }
});

test("functions.invoke with only the publishable key is 403", async () => {
  const { error } = await client().functions.invoke("admin-list-experiments", { body: {} });
  assert.equal(await status(error), 403);
  assert.equal((await error.context.json()).error.code, "forbidden");
});

test("rpc as the signed-in user: for itself 200, for someone else 42501", async () => {
  const sb = await signedIn(env.NOBODY_EMAIL);
  const own = await sb.rpc("rec_assign_variants", { user_id: env.NOBODY_ID });
  assert.equal(own.error, null, own.error?.message);
  assert.equal(own.status, 200);
  assert.equal(typeof own.data, "object");
  const other = await sb.rpc("rec_assign_variants", { user_id: env.ADMIN_ID });
  assert.equal(other.data, null);
  assert.equal(other.status, 403);
  assert.equal(other.error.code, "42501");
});

function impression(item) {
  return { user_id: env.INSERT_USER, item_id: item, request_context: { experiments: {} } };
}

test("impression and outcome inserts answer as PostgREST does", async () => {
  const sb = client(env.SECRET_KEY); // a recommender backend writes with the secret key
  const plain = await sb.from("rec_impressions").insert(impression("plain"));
  assert.equal(plain.error, null, plain.error?.message);
  assert.equal(plain.status, 201);
  assert.equal(plain.data, null);

  const all = await sb.from("rec_impressions").insert(impression("select-all")).select();
  assert.equal(all.error, null, all.error?.message);
  assert.equal(all.data.length, 1);
  assert.deepEqual(Object.keys(all.data[0]).sort(), [
    "created_at",
    "id",
    "item_id",
    "request_context",
    "user_id",
  ]);

  const ids = await sb
    .from("rec_impressions")
    .insert([impression("ids-1"), impression("ids-2")])
    .select("id");
  assert.equal(ids.error, null, ids.error?.message);
  assert.equal(ids.data.length, 2);
  for (const row of ids.data) assert.deepEqual(Object.keys(row), ["id"]);

  const one = await sb.from("rec_impressions").insert(impression("single")).select("id, item_id").single();
  assert.equal(one.error, null, one.error?.message);
  assert.ok(!Array.isArray(one.data));
  assert.deepEqual(one.data, { id: one.data.id, item_id: "single" });

  const outcome = { impression_id: one.data.id, user_id: env.INSERT_USER, outcome: "click" };
  const logged = await sb.from("rec_outcomes").insert(outcome).select().single();
  assert.equal(logged.error, null, logged.error?.message);
  assert.equal(logged.data.impression_id, one.data.id);
  assert.equal(logged.data.value, 1);
  const saved = await sb
    .from("rec_outcomes")
    .insert([{ ...outcome, outcome: "save" }])
    .select("id");
  assert.equal(saved.error, null, saved.error?.message);
  assert.deepEqual(Object.keys(saved.data[0]), ["id"]);
});

test(".single() on zero or many inserted rows is PGRST116 and inserts nothing", async () => {
  const sb = client(env.SECRET_KEY);
  const many = await sb
    .from("rec_impressions")
    .insert([impression("many-1"), impression("many-2")])
    .select()
    .single();
  assert.equal(many.status, 406);
  assert.equal(many.error.code, "PGRST116");
  assert.equal(many.error.details, "The result contains 2 rows");
});

test("what the local /rest/v1 does not serve is refused with PGRST127", async () => {
  const sb = client(env.SECRET_KEY);
  const refusals = {
    upsert: await sb.from("rec_impressions").upsert(impression("upsert")).select(),
    "upsert ignoreDuplicates": await sb
      .from("rec_impressions")
      .upsert(impression("upsert-ignore"), { onConflict: "id", ignoreDuplicates: true }),
    read: await sb.from("rec_impressions").select("id").eq("user_id", env.INSERT_USER),
    update: await sb.from("rec_impressions").update({ item_id: "changed" }).eq("user_id", env.INSERT_USER),
    delete: await sb.from("rec_impressions").delete().eq("user_id", env.INSERT_USER),
    "insert with count": await sb.from("rec_impressions").insert(impression("counted"), { count: "exact" }),
  };
  for (const [what, answer] of Object.entries(refusals)) {
    assert.equal(answer.status, 400, what);
    assert.equal(answer.error?.code, "PGRST127", what);
  }
});
