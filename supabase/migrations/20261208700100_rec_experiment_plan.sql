-- Planning an experiment (docs/reference.md, "Planning"): how many users a
-- run of d days would see, and each goal metric's per-user spread over the
-- last 28 days, so that Python can give the smallest detectable effect.
-- Sums only; the formulas are in shared/results/plan.py.

-- For the experiment (any status): its variants, settings and eligible
-- share (coverage times the layer range's share of 10,000 buckets, when it
-- has them); per d in p_days (each 1..28; default 7, 14, 28) the distinct
-- users with an impression in the d days ending yesterday (UTC); the goal
-- metrics and, per goal metric over the users seen in the last 28 days and
-- all their impressions (tagged or not), users, Σn, Σn², Σa, Σa², Σan
-- (capped as the metric says, as results do).
create function public.rec_experiment_plan_stats(p_experiment_key text, p_days int[] default null)
returns jsonb
language plpgsql stable security definer
set search_path = ''
set work_mem = '64MB'
set jit = off
as $$
declare
  e public.rec_experiments := rec_internal.experiment(p_experiment_key);
  settings jsonb := to_jsonb(e);
  days int[] := coalesce(p_days, array[7, 14, 28]);
  last_day date := (now() at time zone 'UTC')::date - 1;
  coverage double precision := coalesce((settings->>'coverage')::double precision, 1);
  layer_range int4range := (settings->>'layer_range')::int4range;
  defs jsonb;
  stats jsonb;
begin
  if cardinality(days) = 0 or exists (select 1 from unnest(days) d where d is null or d not between 1 and 28) then
    raise exception 'days must be whole numbers from 1 to 28, got %', days using errcode = '22023',
      hint = 'Plan runs of 1 to 28 days, for example [7, 14, 28].';
  end if;
  select coalesce(jsonb_agg(d.value order by d.ord), '[]') into defs
    from jsonb_array_elements(rec_internal.experiment_metric_definitions(e.id)) with ordinality d(value, ord)
   where d.value->>'role' = 'goal';
  with seen as materialized (
    select p.user_id, p.outcome, p.impressions as n, p.engaged_impressions as en, p.outcomes as o,
           p.outcome_value as v
      from rec_internal.cuped_user_pre_counts(last_day - 27, last_day) p
  ), def as (
    select d.value->>'metric' as metric, d.value->>'kind' as kind, d.value->>'outcome' as outcome,
           (d.value->>'capping')::double precision as capping
      from jsonb_array_elements(defs) d
  ), per_user_metric as materialized (
    select d.metric, d.kind, d.capping, u.n::numeric as n,
           case d.kind
             when 'impression_rate' then coalesce(case when d.outcome is null then u.en else x.en end, 0)
             when 'per_user_count' then coalesce(case when d.outcome is null then u.o else x.o end, 0)
             when 'user_rate' then (coalesce(case when d.outcome is null then u.en else x.en end, 0) > 0)::int
             else coalesce(case when d.outcome is null then u.v else x.v end, 0)
           end::numeric as a
      from def d
     cross join seen u
      left join seen x on x.user_id = u.user_id and x.outcome = d.outcome
     where u.outcome is null
  ), caps as (
    select p.metric,
           percentile_cont(p.capping) within group (order by p.a::double precision)::numeric as cap_a,
           percentile_cont(p.capping) within group (order by p.n::double precision)::numeric as cap_n
      from per_user_metric p
     where p.capping is not null
     group by p.metric, p.capping
  ), capped as (
    select p.metric,
           case when c.metric is not null and p.kind in ('impression_rate', 'value_per_impression')
                then p.n * least(1, c.cap_n / p.n) else p.n end as n,
           case when c.metric is null then p.a
                when p.kind = 'impression_rate' then p.a * least(1, c.cap_n / p.n)
                when p.kind = 'value_per_impression' then least(p.a, c.cap_a) * least(1, c.cap_n / p.n)
                else least(p.a, c.cap_a) end as a
      from per_user_metric p
      left join caps c on c.metric = p.metric
  ), metric_stats as (
    select c.metric, count(*) as users, sum(c.n) as sum_n, sum(c.n * c.n) as sum_nn,
           sum(c.a) as sum_a, sum(c.a * c.a) as sum_aa, sum(c.a * c.n) as sum_an
      from capped c
     group by c.metric
  )
  select jsonb_build_object(
           'key', e.key, 'variants', e.variants, 'last_day', last_day,
           'settings', jsonb_build_object('sequential', e.sequential, 'sequential_tuning', e.sequential_tuning,
                                          'cuped_days', e.cuped_days),
           'eligible_share', coverage * case when layer_range is null then 1
                                             else (upper(layer_range) - lower(layer_range)) / 10000.0 end,
           'users', (select jsonb_agg(jsonb_build_object('days', d.days, 'users', (
                              select count(distinct i.user_id) from public.rec_impressions i
                               where (i.created_at at time zone 'UTC')::date between last_day - d.days + 1
                                                                                  and last_day))
                                      order by d.ord)
                       from unnest(days) with ordinality d(days, ord)),
           'metric_definitions', defs,
           'metric_stats', coalesce((select jsonb_agg(to_jsonb(s) order by s.metric) from metric_stats s), '[]'))
    into stats;
  return stats;
end
$$;
comment on function public.rec_experiment_plan_stats(text, int[]) is
  'Users seen per run length and per-user spread of each goal metric over the last 28 days: what a plan needs.';
revoke all on function public.rec_experiment_plan_stats(text, int[]) from public, anon, authenticated;
grant execute on function public.rec_experiment_plan_stats(text, int[]) to service_role;
