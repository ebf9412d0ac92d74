-- Results per metric of the experiment: for each metric and variant, the
-- sufficient statistics over analysed users that its kind needs, capped as
-- the metric says, and what the heavy-users warning needs. The formulas
-- stay in Python (shared/results/); the database returns sums only.

-- Per (user, tagged variant, outcome name) over the UTC days from..to of
-- the impressions (null = unbounded): impressions tagged with that variant
-- having at least one outcome of that name, the outcome rows of that name
-- on them, and the sum of their value (numeric: exact). Only rows with
-- outcomes. The seam results read; it may be answered from rollups later,
-- so keep the signature and meaning.
create function rec_internal.results_user_outcome_counts(p_experiment_key text, p_from date, p_to date)
returns table (user_id uuid, variant text, outcome text, engaged_impressions bigint, outcomes bigint,
               outcome_value numeric)
language sql stable
set search_path = ''
set jit = off
set work_mem = '64MB'
as $$
  -- Outcomes are grouped per (impression, name) first and hash-joined to
  -- the window's tagged impressions: one read of each table.
  select s.user_id, s.variant, o.outcome, count(*)::bigint, sum(o.n)::bigint, sum(o.v)
    from (select i.user_id, i.id, i.request_context->'experiments'->>p_experiment_key as variant
            from public.rec_impressions i
           where (i.created_at at time zone 'UTC')::date
                 between coalesce(p_from, '-infinity'::date) and coalesce(p_to, 'infinity'::date)
          offset 0) s
    join (select x.impression_id, x.outcome, count(*) as n, sum(x.value::numeric) as v
            from public.rec_outcomes x
           group by x.impression_id, x.outcome) o on o.impression_id = s.id
   where s.variant is not null
   group by s.user_id, s.variant, o.outcome
$$;
comment on function rec_internal.results_user_outcome_counts(text, date, date) is
  'Per user, tagged variant and outcome name in a UTC-day window: engaged impressions, outcomes, value.';
revoke all on function rec_internal.results_user_outcome_counts(text, date, date)
  from public, anon, authenticated, service_role;

-- The answer's raw material: as before (per-variant any-outcome sums and
-- the health counts), plus the experiment's metric definitions in order;
-- per metric and variant over analysed users, users, Σn, Σn², Σa, Σa², Σan,
-- where n is the user's tagged impressions and a the metric's per-user
-- value (ratio kinds: the numerator), both after capping; for uncapped
-- metrics with at least 1,000 analysed users, the share of the numerator
-- held by the top 0.1 %; whether goals changed after the start; and the
-- analysis settings.
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
  ), per_user_metric as materialized (
    -- a: the numerator (ratio kinds) or the per-user value (others)
    select d.metric, d.kind, d.capping, a.variant, a.n::numeric as n,
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
  ), caps as (
    -- percentile_cont over the analysed users of all variants
    select p.metric,
           percentile_cont(p.capping) within group (order by p.a::double precision)::numeric as cap_a,
           percentile_cont(p.capping) within group (order by p.n::double precision)::numeric as cap_n
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
                else least(p.a, c.cap_a) end as a
      from per_user_metric p
      left join caps c on c.metric = p.metric
  ), metric_stats as (
    select c.metric, c.variant, count(*) as users, sum(c.n) as sum_n, sum(c.n * c.n) as sum_nn,
           sum(c.a) as sum_a, sum(c.a * c.a) as sum_aa, sum(c.a * c.n) as sum_an
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
           -- settings columns may not exist yet: read them by name, defaults off
           'settings', jsonb_build_object(
             'sequential', coalesce((to_jsonb(e)->>'sequential')::boolean, false),
             'sequential_tuning', coalesce((to_jsonb(e)->>'sequential_tuning')::int, 5000),
             'cuped_days', coalesce((to_jsonb(e)->>'cuped_days')::int, 0)))
    into stats
    from health h;
  return stats;
end
$$;
comment on function public.rec_experiment_results_stats(text, date, date) is
  'Per-variant and per-metric sufficient statistics over analysed users and health counts of one experiment in a UTC-day window.';
