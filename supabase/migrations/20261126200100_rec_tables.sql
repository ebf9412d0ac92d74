-- The five tables of docs/reference.md §1, their constraints and indexes.

create table public.rec_experiments (
  id uuid primary key default gen_random_uuid(),
  key text not null unique
    constraint rec_experiments_key_format check (key ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
  name text,
  description text,
  status text not null default 'draft'
    constraint rec_experiments_status_check check (status in ('draft', 'active', 'ended')),
  variants jsonb not null
    constraint rec_experiments_variants_check check (rec_internal.variants_problem(variants) is null),
  salt text not null default rec_internal.new_salt()
    constraint rec_experiments_salt_check check (length(salt) between 1 and 256),
  -- null = never rotate; the scheduler rotates once this has elapsed.
  salt_rotation_interval interval
    constraint rec_experiments_rotation_check
      check (salt_rotation_interval > interval '0' and salt_rotation_interval <= interval '100 years'),
  salt_rotated_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  started_at timestamptz,
  ended_at timestamptz
);
comment on table public.rec_experiments is
  'Experiments: key, lifecycle status, weighted variants and the salt of the assignment hash.';

-- rec_assign_variants reads every active experiment on each request.
create index rec_experiments_active_idx on public.rec_experiments (key) where status = 'active';

create function rec_internal.touch_updated_at() returns trigger
language plpgsql set search_path = '' as $$
begin
  new.updated_at := now();
  return new;
end
$$;

create trigger rec_experiments_touch before update on public.rec_experiments
  for each row execute function rec_internal.touch_updated_at();

create table public.rec_user_experiment_assignments (
  experiment_id uuid not null references public.rec_experiments (id) on delete cascade,
  -- no foreign key to auth.users: anonymous and external users are units too
  user_id uuid not null,
  variant text not null,
  assignment_mode text not null default 'auto'
    constraint rec_assignments_mode_check check (assignment_mode in ('auto', 'manual')),
  assigned_by uuid,
  assigned_at timestamptz not null default now(),
  primary key (experiment_id, user_id),
  constraint rec_assignments_auto_has_no_admin check (assignment_mode = 'manual' or assigned_by is null)
);
comment on table public.rec_user_experiment_assignments is
  'Sticky assignments: one row per (experiment, user); manual rows are admin overrides.';
-- "Every experiment this user is in" (user lookup, admin search).
create index rec_assignments_user_idx on public.rec_user_experiment_assignments (user_id);

create table public.rec_impressions (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null,
  item_id text,
  -- request_context.experiments is the {experiment_key: variant} map
  -- rec_assign_variants returned; metrics are computed from it.
  request_context jsonb not null default '{}'
    constraint rec_impressions_context_check check (
      jsonb_typeof(request_context) = 'object'
      and coalesce(jsonb_typeof(request_context->'experiments'), 'object') = 'object'),
  created_at timestamptz not null default now()
);
comment on table public.rec_impressions is
  'What the recommender showed; request_context.experiments tags the serving variants.';
-- Metrics by UTC day: an expression index so day ranges are index-backed.
create index rec_impressions_day_idx on public.rec_impressions (((created_at at time zone 'UTC')::date));
create index rec_impressions_user_idx on public.rec_impressions (user_id, created_at);

create table public.rec_outcomes (
  id uuid primary key default gen_random_uuid(),
  impression_id uuid not null references public.rec_impressions (id) on delete cascade,
  user_id uuid not null,
  outcome text not null
    constraint rec_outcomes_outcome_check check (length(outcome) between 1 and 64),
  value double precision not null default 1,
  created_at timestamptz not null default now()
);
comment on table public.rec_outcomes is 'What users did with an impression (click, like, save...).';
create index rec_outcomes_impression_idx on public.rec_outcomes (impression_id) include (value);

create table public.rec_audit_log (
  id bigint generated always as identity primary key,
  experiment_id uuid references public.rec_experiments (id) on delete set null,
  action text not null,
  actor_id uuid,
  details jsonb not null default '{}',
  created_at timestamptz not null default now()
);
comment on table public.rec_audit_log is
  'One row per state-changing admin action, written in the same transaction as the change.';
create index rec_audit_log_experiment_idx on public.rec_audit_log (experiment_id, id desc);
