-- The metric catalogue (docs/reference.md, "Metrics people decide on"):
-- metric definitions (kind, outcome name, direction, capping), which of
-- them an experiment decides on (goal / guardrail / secondary), and the
-- audited RPCs that are the only way to write either table.

create table public.rec_metrics (
  id uuid primary key default gen_random_uuid(),
  key text not null unique
    constraint rec_metrics_key_format check (key ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
  name text,
  description text,
  kind text not null
    constraint rec_metrics_kind_check check (kind in ('impression_rate', 'value_per_impression',
                                                      'per_user_count', 'per_user_value', 'user_rate')),
  -- one outcome name, or null for any outcome
  outcome text
    constraint rec_metrics_outcome_format check (outcome ~ '^[a-z0-9_.-]{1,64}$'),
  direction text not null default 'increase'
    constraint rec_metrics_direction_check check (direction in ('increase', 'decrease')),
  -- winsorisation quantile; a 0/1 value (user_rate) has nothing to cap
  capping double precision
    constraint rec_metrics_capping_check check (capping > 0 and capping < 1),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint rec_metrics_user_rate_uncapped check (kind <> 'user_rate' or capping is null)
);
comment on table public.rec_metrics is
  'Metric definitions: kind, outcome name (null = any), which way is better, optional capping quantile.';

create trigger rec_metrics_touch before update on public.rec_metrics
  for each row execute function rec_internal.touch_updated_at();

create table public.rec_experiment_metrics (
  experiment_id uuid not null references public.rec_experiments (id) on delete cascade,
  metric_id uuid not null references public.rec_metrics (id),
  role text not null
    constraint rec_experiment_metrics_role_check check (role in ('goal', 'guardrail', 'secondary')),
  -- the order the set was given in: results list metrics by role, then by this
  position int not null,
  primary key (experiment_id, metric_id)
);
comment on table public.rec_experiment_metrics is
  'The metrics an experiment is judged on, with their role; none = the three built-ins as goals.';
create index rec_experiment_metrics_metric_idx on public.rec_experiment_metrics (metric_id);

-- The built-ins: the three metrics results always had, over any outcome,
-- uncapped. Fixed ids and times, so every database has the same rows.
insert into public.rec_metrics (id, key, name, description, kind, created_at, updated_at)
values ('00000000-0000-4000-8000-00000000b001', 'engagement_rate', 'Engagement rate',
        'Share of tagged impressions with at least one outcome (per-user ratio).', 'impression_rate',
        '2026-12-08T00:00:00Z', '2026-12-08T00:00:00Z'),
       ('00000000-0000-4000-8000-00000000b002', 'outcomes_per_user', 'Outcomes per user',
        'Outcome rows per analysed user.', 'per_user_count', '2026-12-08T00:00:00Z', '2026-12-08T00:00:00Z'),
       ('00000000-0000-4000-8000-00000000b003', 'engaged_user_rate', 'Engaged user rate',
        'Share of analysed users with at least one engaged impression.', 'user_rate',
        '2026-12-08T00:00:00Z', '2026-12-08T00:00:00Z');

create function rec_internal.builtin_metric(metric_key text) returns boolean
language sql immutable parallel safe set search_path = '' as $$
  select metric_key in ('engagement_rate', 'outcomes_per_user', 'engaged_user_rate')
$$;

-- --- Who may write: nobody but the audited RPCs ------------------------------

alter table public.rec_metrics enable row level security;
alter table public.rec_experiment_metrics enable row level security;
revoke all on public.rec_metrics, public.rec_experiment_metrics from public, anon, authenticated, service_role;
grant select on public.rec_metrics, public.rec_experiment_metrics to service_role;

create trigger rec_metrics_audited_writes_only
  before insert or update or delete or truncate on public.rec_metrics
  for each statement execute function rec_internal.refuse_api_write(
    'metrics change only through the audited rec_* functions',
    'Use rec_create_metric or rec_update_metric.');
create trigger rec_experiment_metrics_audited_writes_only
  before insert or update or delete or truncate on public.rec_experiment_metrics
  for each statement execute function rec_internal.refuse_api_write(
    'an experiment''s metrics change only through the audited rec_set_experiment_metrics',
    'Use rec_set_experiment_metrics.');

-- --- Checks shared by create and update --------------------------------------

create function rec_internal.check_metric(kind text, outcome text, direction text, capping double precision)
returns void
language plpgsql immutable set search_path = '' as $$
begin
  if kind is null or kind not in ('impression_rate', 'value_per_impression', 'per_user_count',
                                  'per_user_value', 'user_rate') then
    raise exception 'unknown metric kind %', coalesce(quote_literal(kind), 'null')
      using errcode = '22023',
            hint = 'A kind is impression_rate, value_per_impression, per_user_count, per_user_value or user_rate.';
  end if;
  if outcome is not null and outcome !~ '^[a-z0-9_.-]{1,64}$' then
    raise exception 'invalid outcome name %', quote_literal(outcome)
      using errcode = '22023', hint = 'An outcome name is 1-64 of a-z, 0-9, _ . - (or null for any outcome).';
  end if;
  if direction is null or direction not in ('increase', 'decrease') then
    raise exception 'invalid direction %', coalesce(quote_literal(direction), 'null')
      using errcode = '22023', hint = 'A direction is increase or decrease (which way is better).';
  end if;
  if capping is not null and not (capping > 0 and capping < 1) then
    raise exception 'capping must be a quantile strictly between 0 and 1, got %', capping
      using errcode = '22023', hint = 'For example 0.999 caps each user at the 99.9th percentile.';
  end if;
  if capping is not null and kind = 'user_rate' then
    raise exception 'a user_rate metric cannot be capped: each user counts 0 or 1 already'
      using errcode = '22023', hint = 'Leave capping out for user_rate metrics.';
  end if;
end
$$;

create function rec_internal.metric(metric_key text, for_update boolean default false)
returns public.rec_metrics
language plpgsql volatile set search_path = '' as $$
declare
  m public.rec_metrics;
begin
  if for_update then
    select * into m from public.rec_metrics x where x.key = metric.metric_key for no key update;
  else
    select * into m from public.rec_metrics x where x.key = metric.metric_key;
  end if;
  if not found then
    raise exception 'metric % does not exist', coalesce(quote_literal(metric_key), 'null')
      using errcode = 'P0002', hint = 'Check the key with rec_list_metrics().';
  end if;
  return m;
end
$$;

-- --- RPCs ----------------------------------------------------------------

create function public.rec_create_metric(
  metric_key text, kind text, admin_id uuid, name text default null, description text default null,
  outcome text default null, direction text default 'increase', capping double precision default null)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  m public.rec_metrics;
begin
  perform rec_internal.require_admin_id(admin_id);
  if metric_key is null or metric_key !~ '^[a-z0-9][a-z0-9_.-]{0,63}$' then
    raise exception 'invalid metric key %', coalesce(quote_literal(metric_key), 'null')
      using errcode = '22023', hint = 'A key is 1-64 of a-z, 0-9, _ . - and starts with a letter or digit.';
  end if;
  perform rec_internal.check_metric(kind, outcome, coalesce(direction, 'increase'), capping);
  if exists (select 1 from public.rec_metrics x where x.key = metric_key) then
    raise exception 'metric % already exists', quote_literal(metric_key)
      using errcode = '23505', hint = 'Pick another key, or change it with rec_update_metric.';
  end if;
  insert into public.rec_metrics (key, name, description, kind, outcome, direction, capping)
  values (metric_key, name, description, kind, outcome, coalesce(direction, 'increase'), capping)
  returning * into m;
  perform rec_internal.audit(null, 'create_metric', admin_id,
                             jsonb_build_object('metric_key', m.key, 'after', to_jsonb(m)));
  return to_jsonb(m);
end
$$;
comment on function public.rec_create_metric(text, text, uuid, text, text, text, text, double precision) is
  'Define a metric (kind, outcome name or null for any, direction, capping quantile), audited.';

-- null = unchanged; capping => 0 removes the capping. Kind and outcome are fixed.
create function public.rec_update_metric(
  metric_key text, admin_id uuid, name text default null, description text default null,
  direction text default null, capping double precision default null)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  old public.rec_metrics;
  m public.rec_metrics;
  new_capping double precision;
  changed jsonb;
begin
  perform rec_internal.require_admin_id(admin_id);
  old := rec_internal.metric(metric_key, for_update => true);
  if rec_internal.builtin_metric(old.key) then
    raise exception 'metric % is built in and cannot change', quote_literal(old.key)
      using errcode = '55000', hint = 'Create a metric of your own with rec_create_metric instead.';
  end if;
  new_capping := case when capping is null then old.capping when capping = 0 then null else capping end;
  perform rec_internal.check_metric(old.kind, old.outcome, coalesce(direction, old.direction), new_capping);
  update public.rec_metrics x
     set name = coalesce(rec_update_metric.name, x.name),
         description = coalesce(rec_update_metric.description, x.description),
         direction = coalesce(rec_update_metric.direction, x.direction),
         capping = new_capping
   where x.id = old.id
  returning * into m;
  select jsonb_object_agg(n.key, jsonb_build_object('before', o.value, 'after', n.value))
    into changed
    from jsonb_each(to_jsonb(m)) n join jsonb_each(to_jsonb(old)) o using (key)
   where n.value is distinct from o.value and n.key <> 'updated_at';
  perform rec_internal.audit(null, 'update_metric', admin_id,
                             jsonb_build_object('metric_key', m.key, 'changes', coalesce(changed, '{}')));
  return to_jsonb(m);
end
$$;
comment on function public.rec_update_metric(text, uuid, text, text, text, double precision) is
  'Change a metric''s name, description, direction or capping (null = unchanged, 0 = no capping), audited.';

create function public.rec_list_metrics()
returns table (id uuid, key text, name text, description text, kind text, outcome text, direction text,
               capping double precision, builtin boolean, created_at timestamptz, updated_at timestamptz)
language sql stable security definer
set search_path = ''
as $$
  select m.id, m.key, m.name, m.description, m.kind, m.outcome, m.direction, m.capping,
         rec_internal.builtin_metric(m.key), m.created_at, m.updated_at
    from public.rec_metrics m
   order by rec_internal.builtin_metric(m.key) desc, m.created_at, m.key
$$;
comment on function public.rec_list_metrics() is 'Every metric definition, built-ins first.';

-- An experiment's metric set as [{metric, role}]: by role, then as given.
create function rec_internal.experiment_metric_set(experiment_id uuid) returns jsonb
language sql stable set search_path = '' as $$
  select coalesce(jsonb_agg(jsonb_build_object('metric', m.key, 'role', x.role)
                            order by array_position(array['goal', 'guardrail', 'secondary'], x.role),
                                     x.position), '[]')
    from public.rec_experiment_metrics x
    join public.rec_metrics m on m.id = x.metric_id
   where x.experiment_id = experiment_metric_set.experiment_id
$$;

create function public.rec_set_experiment_metrics(experiment_key text, metrics jsonb, admin_id uuid)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  e public.rec_experiments;
  before jsonb;
  after jsonb;
  item jsonb;
  bad text;
begin
  perform rec_internal.require_admin_id(admin_id);
  e := rec_internal.experiment(experiment_key, for_update => true);
  if e.status = 'ended' then
    raise exception 'metrics of experiment % cannot change: it has ended', quote_literal(e.key)
      using errcode = '55000', hint = 'What an ended experiment was judged on is part of its record.';
  end if;
  if metrics is null or jsonb_typeof(metrics) <> 'array' or jsonb_array_length(metrics) = 0 then
    raise exception 'metrics must be a non-empty array of {"metric", "role"}'
      using errcode = '22023', hint = 'For example [{"metric": "engagement_rate", "role": "goal"}].';
  end if;
  for item in select value from jsonb_array_elements(metrics) loop
    if jsonb_typeof(item) <> 'object' or jsonb_typeof(item->'metric') is distinct from 'string'
       or jsonb_typeof(item->'role') is distinct from 'string'
       or exists (select 1 from jsonb_object_keys(item) k where k not in ('metric', 'role')) then
      raise exception 'invalid metrics entry %: each is {"metric": key, "role": role}', item
        using errcode = '22023';
    end if;
    if item->>'role' not in ('goal', 'guardrail', 'secondary') then
      raise exception 'invalid role % for metric %', quote_literal(item->>'role'), quote_literal(item->>'metric')
        using errcode = '22023', hint = 'A role is goal, guardrail or secondary.';
    end if;
  end loop;
  select x.metric into bad
    from (select value->>'metric' as metric from jsonb_array_elements(metrics)) x
   group by x.metric having count(*) > 1 limit 1;
  if bad is not null then
    raise exception 'metric % is listed twice', quote_literal(bad) using errcode = '22023',
      hint = 'Each metric has one role.';
  end if;
  select x.value->>'metric' into bad
    from jsonb_array_elements(metrics) x
   where not exists (select 1 from public.rec_metrics m where m.key = x.value->>'metric') limit 1;
  if bad is not null then
    perform rec_internal.metric(bad);  -- raises P0002
  end if;
  if not exists (select 1 from jsonb_array_elements(metrics) x where x.value->>'role' = 'goal') then
    raise exception 'a metric set needs at least one goal' using errcode = '22023',
      hint = 'Goals decide the verdict; guardrails must not get worse; secondaries are for context.';
  end if;
  before := rec_internal.experiment_metric_set(e.id);
  delete from public.rec_experiment_metrics x where x.experiment_id = e.id;
  insert into public.rec_experiment_metrics (experiment_id, metric_id, role, position)
  select e.id, m.id, x.value->>'role', x.ordinality
    from jsonb_array_elements(metrics) with ordinality x
    join public.rec_metrics m on m.key = x.value->>'metric';
  after := rec_internal.experiment_metric_set(e.id);
  perform rec_internal.audit(e.id, 'set_experiment_metrics', admin_id, jsonb_build_object(
    'experiment_key', e.key, 'before', before, 'after', after,
    'goals_changed', (select coalesce(jsonb_agg(v->'metric' order by v->>'metric')
                                        filter (where v->>'role' = 'goal'), '[]') from jsonb_array_elements(before) v)
                     is distinct from
                     (select coalesce(jsonb_agg(v->'metric' order by v->>'metric')
                                        filter (where v->>'role' = 'goal'), '[]') from jsonb_array_elements(after) v)));
  return jsonb_build_object('experiment_key', e.key, 'metrics', after);
end
$$;
comment on function public.rec_set_experiment_metrics(text, jsonb, uuid) is
  'Set the metrics an experiment is judged on ([{"metric", "role"}], at least one goal), audited; not once ended.';

-- The metrics results report for an experiment, in order: its set, or the
-- three built-ins as goals when it has none.
create function rec_internal.experiment_metric_definitions(experiment_id uuid) returns jsonb
language sql stable set search_path = '' as $$
  with chosen as (
    select m.key, m.kind, m.outcome, m.direction, m.capping, x.role,
           array_position(array['goal', 'guardrail', 'secondary'], x.role) as role_rank, x.position
      from public.rec_experiment_metrics x
      join public.rec_metrics m on m.id = x.metric_id
     where x.experiment_id = experiment_metric_definitions.experiment_id
  ), defaults as (
    select m.key, m.kind, m.outcome, m.direction, m.capping, 'goal' as role, 1 as role_rank,
           array_position(array['engagement_rate', 'outcomes_per_user', 'engaged_user_rate'], m.key) as position
      from public.rec_metrics m
     where rec_internal.builtin_metric(m.key) and not exists (select 1 from chosen)
  )
  select coalesce(jsonb_agg(jsonb_build_object('metric', d.key, 'kind', d.kind, 'outcome', d.outcome,
                                               'direction', d.direction, 'capping', d.capping, 'role', d.role)
                            order by d.role_rank, d.position), '[]')
    from (select * from chosen union all select * from defaults) d
$$;

revoke all on function rec_internal.builtin_metric(text),
                       rec_internal.check_metric(text, text, text, double precision),
                       rec_internal.metric(text, boolean),
                       rec_internal.experiment_metric_set(uuid),
                       rec_internal.experiment_metric_definitions(uuid)
  from public, anon, authenticated, service_role;
revoke all on function public.rec_create_metric(text, text, uuid, text, text, text, text, double precision),
                       public.rec_update_metric(text, uuid, text, text, text, double precision),
                       public.rec_list_metrics(),
                       public.rec_set_experiment_metrics(text, jsonb, uuid)
  from public, anon, authenticated;
grant execute on function public.rec_create_metric(text, text, uuid, text, text, text, text, double precision),
                          public.rec_update_metric(text, uuid, text, text, text, double precision),
                          public.rec_list_metrics(),
                          public.rec_set_experiment_metrics(text, jsonb, uuid)
  to service_role;
