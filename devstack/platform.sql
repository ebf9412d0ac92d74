-- Platform stand-in: what a Supabase project already has before any
-- migration runs. Applied by `recsys-exp migrate` to a plain Postgres only
-- (never part of supabase/migrations). Idempotent: safe to run again.
--
-- Placeholders filled by devstack/platform.py:
--   :owner  the non-superuser that owns and applies the migrations
--           (Supabase's `postgres`, which is not a superuser there)

do $$
begin
  -- API roles exactly as Supabase creates them.
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  -- PostgREST logs in as authenticator and switches role per request.
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'supabase_auth_admin') then
    create role supabase_auth_admin nologin noinherit;
  end if;
end
$$;

grant anon, authenticated, service_role to authenticator;

-- The migration owner may grant to the API roles and act as them in tests.
grant anon, authenticated, service_role to :"owner";
grant usage, create on schema public to :"owner";
grant create on database :"dbname" to :"owner";
grant usage on schema public to anon, authenticated, service_role;

-- extensions schema (Supabase installs extensions there).
create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role, :"owner";

-- auth schema: users table and the JWT helpers RLS policies use.
create schema if not exists auth authorization supabase_auth_admin;
grant usage on schema auth to anon, authenticated, service_role, :"owner";

create table if not exists auth.users (
  id uuid primary key,
  email text,
  raw_user_meta_data jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table auth.users owner to supabase_auth_admin;
grant select on auth.users to :"owner", service_role;
grant all on auth.users to :"owner";

create or replace function auth.jwt() returns jsonb
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

create or replace function auth.uid() returns uuid
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

alter function auth.jwt() owner to supabase_auth_admin;
alter function auth.uid() owner to supabase_auth_admin;
alter function auth.role() owner to supabase_auth_admin;
grant execute on function auth.jwt(), auth.uid(), auth.role()
  to anon, authenticated, service_role, :"owner";

-- Where the Supabase CLI records applied migrations; we use the same table
-- so `supabase db push` later sees what `recsys-exp migrate` applied.
create schema if not exists supabase_migrations authorization :"owner";

-- What the Auth stand-in (devstack/auth.py) keeps, as GoTrue keeps it:
-- a bcrypt `encrypted_password` on auth.users, one row per signed-in
-- session, and single-use refresh tokens chained to their session.
alter table auth.users add column if not exists encrypted_password text;
alter table auth.users add column if not exists email_confirmed_at timestamptz;
alter table auth.users add column if not exists last_sign_in_at timestamptz;
alter table auth.users add column if not exists raw_app_meta_data jsonb not null default '{}';

create table if not exists auth.sessions (
  id uuid primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table auth.sessions owner to supabase_auth_admin;
-- GoTrue's session end time (null: until signed out); rec_admin_role reads it.
alter table auth.sessions add column if not exists not_after timestamptz;
-- As on Supabase, the migration owner reads the sessions (rec_admin_role).
grant select on auth.sessions to :"owner";

create table if not exists auth.refresh_tokens (
  id bigint generated always as identity primary key,
  token text not null unique,
  user_id uuid not null references auth.users (id) on delete cascade,
  session_id uuid not null references auth.sessions (id) on delete cascade,
  parent text,
  revoked boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table auth.refresh_tokens owner to supabase_auth_admin;
