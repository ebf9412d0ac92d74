-- The results series' per-(user, day) read answered from the daily rollups
-- (docs/rollups.md): clean days of the window from rollup_user_day (any
-- outcome) and rollup_user_day_outcome (per outcome name, whose values also
-- give the any-outcome value), and only the window's dirty days live through
-- rec_impressions_day_idx. Same signature and rows as before, so the series
-- is exact whether or not a day is rolled up.

-- series_user_day_counts of the given days, from the raw tables. The days
-- are planned as constants (one dirty day is an index range scan) and the
-- outcomes are probed per impression, never hashed whole.
create function rec_internal.series_live_user_days(p_experiment_key text, p_days date[])
returns table (user_id uuid, day date, variant text, outcome text, impressions bigint,
               engaged_impressions bigint, outcomes bigint, outcome_value numeric)
language plpgsql stable
set search_path = ''
set jit = off
set work_mem = '64MB'
set plan_cache_mode = force_custom_plan
as $$
begin
  if cardinality(p_days) = 0 then
    return;
  end if;
  return query
  with tagged as materialized (
    select i.id, i.user_id, (i.created_at at time zone 'UTC')::date as day,
           i.request_context->'experiments'->>p_experiment_key as variant
      from public.rec_impressions i
     where (i.created_at at time zone 'UTC')::date = any(p_days)
       and i.request_context->'experiments'->>p_experiment_key is not null
  ), per_name as materialized (
    select t.id, o.outcome, count(*) as n, sum(o.value::numeric) as v
      from tagged t cross join lateral (select x.outcome, x.value from public.rec_outcomes x
                                         where x.impression_id = t.id offset 0) o
     group by t.id, o.outcome
  ), per_imp as (
    select p.id, sum(p.n) as n, sum(p.v) as v from per_name p group by p.id
  )
  select t.user_id, t.day, t.variant, null::text, count(*)::bigint, count(p.id)::bigint,
         coalesce(sum(p.n), 0)::bigint, coalesce(sum(p.v), 0)
    from tagged t left join per_imp p on p.id = t.id
   group by t.user_id, t.day, t.variant
  union all
  select t.user_id, t.day, t.variant, p.outcome, 0::bigint, count(*)::bigint, sum(p.n)::bigint, sum(p.v)
    from tagged t join per_name p on p.id = t.id
   group by t.user_id, t.day, t.variant, p.outcome;
end
$$;
revoke all on function rec_internal.series_live_user_days(text, date[])
  from public, anon, authenticated, service_role;

-- Per (user, day, tagged variant) over the window, any outcome (outcome
-- null: impressions, engaged impressions, outcome rows, value) and per
-- outcome name (impressions 0).
create or replace function rec_internal.series_user_day_counts(p_experiment_key text, p_from date, p_to date)
returns table (user_id uuid, day date, variant text, outcome text, impressions bigint,
               engaged_impressions bigint, outcomes bigint, outcome_value numeric)
language plpgsql stable
set search_path = ''
set jit = off
set work_mem = '64MB'
set plan_cache_mode = force_custom_plan
as $$
declare
  lo constant date := coalesce(p_from, '-infinity'::date);
  hi constant date := coalesce(p_to, 'infinity'::date);
  arms constant integer[] := rec_internal.arms_of(p_experiment_key);
  dirty constant date[] := rec_internal.dirty_days_in(lo, hi);
begin
  return query
  with named as materialized (
    select r.arm_id, r.day, r.user_id, r.outcome, r.engaged_impressions, r.outcomes, r.outcome_value
      from rec_internal.rollup_user_day_outcome r
     where r.arm_id = any(arms) and r.day between lo and hi and r.day <> all(dirty)
  ), valued as (
    -- a user-day's any-outcome value: the sum of its per-name values
    select n.arm_id, n.day, n.user_id, sum(n.outcome_value) as v
      from named n group by n.arm_id, n.day, n.user_id
  )
  select r.user_id, r.day, a.variant, null::text, r.impressions::bigint, r.engaged_impressions::bigint,
         r.outcomes::bigint, coalesce(v.v, 0)
    from rec_internal.rollup_user_day r
    join rec_internal.rollup_arms a on a.arm_id = r.arm_id
    left join valued v on v.arm_id = r.arm_id and v.day = r.day and v.user_id = r.user_id
   where r.arm_id = any(arms) and r.day between lo and hi and r.day <> all(dirty)
  union all
  select n.user_id, n.day, a.variant, n.outcome, 0::bigint, n.engaged_impressions::bigint, n.outcomes::bigint,
         n.outcome_value
    from named n
    join rec_internal.rollup_arms a on a.arm_id = n.arm_id
  union all
  select l.user_id, l.day, l.variant, l.outcome, l.impressions, l.engaged_impressions, l.outcomes,
         l.outcome_value
    from rec_internal.series_live_user_days(p_experiment_key, dirty) l;
end
$$;
revoke all on function rec_internal.series_user_day_counts(text, date, date)
  from public, anon, authenticated, service_role;
comment on function rec_internal.series_user_day_counts(text, date, date) is
  'Per user, UTC day and tagged variant in a window (any outcome, and per outcome name): clean days from rollups.';
