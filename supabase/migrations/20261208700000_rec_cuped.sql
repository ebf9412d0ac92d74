-- CUPED and the analysis settings (docs/reference.md, "CUPED" and
-- "Sequential results"): the three settings columns, the pre-period seam,
-- and the results statistics extended with each analysed user's pre-period
-- value of every metric. Python does the adjustment; SQL only adds sums.

-- The settings. Added here only if the layers migration did not add them
-- already (same names, types, checks): existing experiments keep
-- false/5000/0 so no running analysis changes; new ones default to
-- sequential results and 14 days of CUPED.
alter table public.rec_experiments
  add column if not exists sequential boolean not null default false,
  add column if not exists sequential_tuning int not null default 5000
    constraint rec_experiments_sequential_tuning_check check (sequential_tuning between 100 and 10000000),
  add column if not exists cuped_days int not null default 0
    constraint rec_experiments_cuped_days_check check (cuped_days between 0 and 60);
alter table public.rec_experiments
  alter column sequential set default true,
  alter column cuped_days set default 14;

-- Per user over the UTC days from..to, over all of the user's impressions
-- (tagged or not): one row with outcome null for "any outcome" (impressions,
-- impressions with an outcome, outcome rows, their value), and one row per
-- outcome name (impressions is 0 there). CUPED's pre-period read; keep the
-- signature and meaning if it is answered from rollups later.
create function rec_internal.cuped_user_pre_counts(p_from date, p_to date)
returns table (user_id uuid, outcome text, impressions bigint, engaged_impressions bigint, outcomes bigint,
               outcome_value numeric)
language sql stable
set search_path = ''
set jit = off
set work_mem = '64MB'
as $$
  with imp as materialized (
    select i.id, i.user_id
      from public.rec_impressions i
     where (i.created_at at time zone 'UTC')::date between p_from and p_to
  ), per_name as materialized (
    select imp.user_id, imp.id, x.outcome, count(*) as n, sum(x.value::numeric) as v
      from imp join public.rec_outcomes x on x.impression_id = imp.id
     group by imp.user_id, imp.id, x.outcome
  ), per_imp as (
    select p.id, sum(p.n) as n, sum(p.v) as v from per_name p group by p.id
  )
  select imp.user_id, null::text, count(*)::bigint, count(p.id)::bigint, coalesce(sum(p.n), 0)::bigint,
         coalesce(sum(p.v), 0)
    from imp left join per_imp p on p.id = imp.id
   group by imp.user_id
  union all
  select p.user_id, p.outcome, 0, count(*)::bigint, sum(p.n)::bigint, sum(p.v)
    from per_name p
   group by p.user_id, p.outcome
$$;
comment on function rec_internal.cuped_user_pre_counts(date, date) is
  'Per user (any outcome, and per outcome name) over all impressions in a UTC-day window: CUPED''s pre-period.';
revoke all on function rec_internal.cuped_user_pre_counts(date, date)
  from public, anon, authenticated, service_role;

-- As before, plus per metric and variant the pre-period sums CUPED needs
-- (x = the user's pre-period numerator or value, m = pre-period impressions,
-- both capped as the metric says with their own quantiles; a, n as before):
-- Σm, Σm², Σx, Σx², Σxm, Σa·x, Σa·m, Σn·x, Σn·m; and the pre-period window.
create or replace function public.rec_experiment_results_stats(p_experiment_key text, p_from date default null,
                                                               p_to date default null)
returns jsonb
language plpgsql stable security definer
set search_path = ''
set work_mem = '64MB'
set jit = off
set plan_cache_mode = force_custom_plan
as $$
declare
  e public.rec_experiments := rec_internal.experiment(p_experiment_key);
  v_from date := coalesce(p_from, (coalesce(e.started_at, e.created_at) at time zone 'UTC')::date);
  v_to date := coalesce(p_to, (coalesce(e.ended_at, now()) at time zone 'UTC')::date);
  defs jsonb := rec_internal.experiment_metric_definitions(e.id);
  -- CUPED's pre-period: the cuped_days days before min(start day, from day)
  pre_to date := least((e.started_at at time zone 'UTC')::date, v_from) - 1;
  pre_from date := pre_to - e.cuped_days + 1;
  needs_pre boolean := e.cuped_days > 0 and e.started_at is not null;
  needs_outcomes boolean;
  stats jsonb;
begin
  if v_from > v_to then
    raise exception 'from_day (%) is after to_day (%)', v_from, v_to using errcode = '22023',
      hint = 'Give a window whose first day is on or before its last day.';
  end if;
  -- The outcome seam is read only when a metric needs more than "any outcome" counts.
  needs_outcomes := exists (select 1 from jsonb_array_elements(defs) d
                             where d->>'outcome' is not null
                                or d->>'kind' in ('value_per_impression', 'per_user_value'));
  with per_user as (
    select c.user_id, count(*) as variants, min(c.variant) as variant,
           sum(c.impressions) as n, sum(c.engaged_impressions) as en, sum(c.outcomes) as o
      from rec_internal.results_user_variant_counts(e.key, v_from, v_to) c
     group by c.user_id
  ), flagged as materialized (
    -- Manual overrides are few: one hashed subplan, not a probe per user.
    select u.*, u.variants > 1 as crossover,
           u.user_id in (select m.user_id from public.rec_user_experiment_assignments m
                          where m.experiment_id = e.id and m.assignment_mode = 'manual') as overridden
      from per_user u
  ), health as (
    select count(*) as exposed_users,
           count(*) filter (where f.overridden) as overridden_users,
           count(*) filter (where f.crossover) as crossover_users,
           count(*) filter (where not f.overridden and not f.crossover) as analysed_users
      from flagged f
  ), analysed as materialized (
    select f.user_id, f.variant, f.n, f.en, f.o from flagged f where not f.overridden and not f.crossover
  ), per_variant as (
    select a.variant, count(*) as users, sum(a.n) as sum_n, sum(a.en) as sum_e, sum(a.o) as sum_o,
           sum(a.n * a.n) as sum_nn, sum(a.en * a.en) as sum_ee, sum(a.o * a.o) as sum_oo,
           sum(a.n * a.en) as sum_ne, count(*) filter (where a.en > 0) as engaged_users
      from analysed a
     group by a.variant
  ), def as (
    select d.ord, d.value->>'metric' as metric, d.value->>'kind' as kind, d.value->>'outcome' as outcome,
           (d.value->>'capping')::double precision as capping
      from jsonb_array_elements(defs) with ordinality d(value, ord)
  ), by_outcome as materialized (
    -- one read of the seam, kept to the analysed users (same user and variant)
    select c.user_id, c.outcome, c.engaged_impressions as e, c.outcomes as o, c.outcome_value as v
      from rec_internal.results_user_outcome_counts(e.key, v_from, v_to) c
      join analysed a on a.user_id = c.user_id and a.variant = c.variant
     where needs_outcomes
  ), any_value as (
    select b.user_id, sum(b.v) as v from by_outcome b group by b.user_id
  ), pre as materialized (
    -- the analysed users' pre-period, any outcome (p.outcome is null) and per name
    select p.user_id, p.outcome, p.impressions as n, p.engaged_impressions as e, p.outcomes as o,
           p.outcome_value as v
      from rec_internal.cuped_user_pre_counts(pre_from, pre_to) p
      join analysed a on a.user_id = p.user_id
     where needs_pre
  ), per_user_metric as materialized (
    -- a: the numerator (ratio kinds) or the per-user value (others);
    -- x, m: the same over the pre-period (0 for users with none)
    select d.metric, d.kind, d.capping, a.variant, a.n::numeric as n,
           coalesce(pa.n, 0)::numeric as m,
           case d.kind
             when 'impression_rate' then coalesce(case when d.outcome is null then pa.e else px.e end, 0)
             when 'per_user_count' then coalesce(case when d.outcome is null then pa.o else px.o end, 0)
             when 'user_rate' then (coalesce(case when d.outcome is null then pa.e else px.e end, 0) > 0)::int
             else coalesce(case when d.outcome is null then pa.v else px.v end, 0)
           end::numeric as x,
           case d.kind
             when 'impression_rate' then case when d.outcome is null then a.en else coalesce(x.e, 0) end
             when 'per_user_count' then case when d.outcome is null then a.o else coalesce(x.o, 0) end
             when 'user_rate' then (case when d.outcome is null then a.en else coalesce(x.e, 0) end > 0)::int
             else case when d.outcome is null then coalesce(av.v, 0) else coalesce(x.v, 0) end
           end::numeric as a
      from def d
     cross join analysed a
      left join by_outcome x on x.outcome = d.outcome and x.user_id = a.user_id
      left join any_value av on d.outcome is null and av.user_id = a.user_id
      left join pre pa on pa.outcome is null and pa.user_id = a.user_id
      left join pre px on px.outcome = d.outcome and px.user_id = a.user_id
  ), caps as (
    -- percentile_cont over the analysed users of all variants
    select p.metric,
           percentile_cont(p.capping) within group (order by p.a::double precision)::numeric as cap_a,
           percentile_cont(p.capping) within group (order by p.n::double precision)::numeric as cap_n,
           percentile_cont(p.capping) within group (order by p.x::double precision)::numeric as cap_x,
           percentile_cont(p.capping) within group (order by p.m::double precision)::numeric as cap_m
      from per_user_metric p
     where p.capping is not null
     group by p.metric, p.capping
  ), capped as (
    -- per-user kinds: min(a, c); ratio kinds: numerator and n scaled by
    -- min(1, c/n); value_per_impression caps the value at its own quantile first
    select p.metric, p.variant,
           case when c.metric is not null and p.kind in ('impression_rate', 'value_per_impression')
                then p.n * least(1, c.cap_n / p.n) else p.n end as n,
           case when c.metric is null then p.a
                when p.kind = 'impression_rate' then p.a * least(1, c.cap_n / p.n)
                when p.kind = 'value_per_impression' then least(p.a, c.cap_a) * least(1, c.cap_n / p.n)
                else least(p.a, c.cap_a) end as a,
           case when c.metric is not null and p.kind in ('impression_rate', 'value_per_impression') and p.m > 0
                then p.m * least(1, c.cap_m / p.m) else p.m end as m,
           case when c.metric is null then p.x
                when p.kind in ('impression_rate', 'value_per_impression') and p.m = 0 then p.x
                when p.kind = 'impression_rate' then p.x * least(1, c.cap_m / p.m)
                when p.kind = 'value_per_impression' then least(p.x, c.cap_x) * least(1, c.cap_m / p.m)
                else least(p.x, c.cap_x) end as x
      from per_user_metric p
      left join caps c on c.metric = p.metric
  ), metric_stats as (
    select c.metric, c.variant, count(*) as users, sum(c.n) as sum_n, sum(c.n * c.n) as sum_nn,
           sum(c.a) as sum_a, sum(c.a * c.a) as sum_aa, sum(c.a * c.n) as sum_an,
           sum(c.m) as sum_m, sum(c.m * c.m) as sum_mm, sum(c.x) as sum_x, sum(c.x * c.x) as sum_xx,
           sum(c.x * c.m) as sum_xm, sum(c.a * c.x) as sum_ax, sum(c.a * c.m) as sum_am,
           sum(c.n * c.x) as sum_nx, sum(c.n * c.m) as sum_nm
      from capped c
     group by c.metric, c.variant
  ), heavy as (
    -- uncapped metrics only; top 0.1 % = the floor(N / 1000) largest numerators
    select h.metric, max(h.top) as top_users, sum(h.a) filter (where h.rank <= h.top) as top_sum,
           sum(h.a) as total
      from (select p.metric, p.a, row_number() over (partition by p.metric order by p.a desc) as rank,
                   floor(count(*) over (partition by p.metric) / 1000) as top
              from per_user_metric p
             where p.capping is null and p.kind <> 'user_rate') h
     group by h.metric
    having max(h.top) >= 1
  )
  select jsonb_build_object(
           'key', e.key, 'from_day', v_from, 'to_day', v_to, 'variants', e.variants,
           'stats', coalesce((select jsonb_agg(to_jsonb(v) order by v.variant) from per_variant v), '[]'),
           'health', to_jsonb(h) || jsonb_build_object(
             'assigned_users', (select count(*) from public.rec_user_experiment_assignments a
                                 where a.experiment_id = e.id),
             'untagged_impressions', rec_internal.results_untagged_impressions(e.key, v_from, v_to)),
           'metric_definitions', defs,
           'metric_stats', coalesce((select jsonb_agg(to_jsonb(s) order by s.metric, s.variant)
                                       from metric_stats s), '[]'),
           'heavy_users', coalesce((select jsonb_agg(jsonb_build_object(
                                              'metric', x.metric, 'top_users', x.top_users,
                                              'top_share', case when x.total > 0 then x.top_sum / x.total end)
                                            order by x.metric)
                                      from heavy x), '[]'),
           'goals_changed_after_start', e.started_at is not null and exists (
             select 1 from public.rec_audit_log l
              where l.experiment_id = e.id and l.action = 'set_experiment_metrics'
                and l.created_at > e.started_at and (l.details->>'goals_changed')::boolean),
           'settings', jsonb_build_object('sequential', e.sequential, 'sequential_tuning', e.sequential_tuning,
                                          'cuped_days', e.cuped_days),
           'cuped_window', case when needs_pre then jsonb_build_object('from_day', pre_from, 'to_day', pre_to) end)
    into stats
    from health h;
  return stats;
end
$$;
comment on function public.rec_experiment_results_stats(text, date, date) is
  'Per-variant and per-metric sufficient statistics over analysed users and health counts of one experiment in a UTC-day window.';
revoke all on function public.rec_experiment_results_stats(text, date, date) from public, anon, authenticated;
grant execute on function public.rec_experiment_results_stats(text, date, date) to service_role;
