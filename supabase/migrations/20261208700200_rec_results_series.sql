-- Results over time (docs/reference.md, "Results over time"): for every day
-- d of the window, the per-metric sums of results over [from_day, d], for
-- the uncapped metrics, in one pass. A user's running sums grow only on the
-- days they are seen, so each seen day adds the change of the user's terms
-- (n, a, n², a², an and the CUPED cross terms) and a running sum over days
-- carries the totals forward. A user enters on their first day and leaves
-- for good on the day a second variant is tagged (a crossover user).
-- Capped metrics need each prefix's own quantiles and are left to
-- per-prefix calls of rec_experiment_results_stats.

-- Per (user, day, tagged variant) over the window, any outcome (outcome
-- null: impressions, engaged impressions, outcome rows, value) and per
-- outcome name (impressions 0). Read live from the raw tables once.
create function rec_internal.series_user_day_counts(p_experiment_key text, p_from date, p_to date)
returns table (user_id uuid, day date, variant text, outcome text, impressions bigint,
               engaged_impressions bigint, outcomes bigint, outcome_value numeric)
language sql stable
set search_path = ''
set jit = off
set work_mem = '64MB'
as $$
  with tagged as materialized (
    select i.id, i.user_id, (i.created_at at time zone 'UTC')::date as day,
           i.request_context->'experiments'->>p_experiment_key as variant
      from public.rec_impressions i
     where (i.created_at at time zone 'UTC')::date between p_from and p_to
       and i.request_context->'experiments'->>p_experiment_key is not null
  ), per_name as materialized (
    select t.id, x.outcome, count(*) as n, sum(x.value::numeric) as v
      from tagged t join public.rec_outcomes x on x.impression_id = t.id
     group by t.id, x.outcome
  ), per_imp as (
    select p.id, sum(p.n) as n, sum(p.v) as v from per_name p group by p.id
  )
  select t.user_id, t.day, t.variant, null::text, count(*)::bigint, count(p.id)::bigint,
         coalesce(sum(p.n), 0)::bigint, coalesce(sum(p.v), 0)
    from tagged t left join per_imp p on p.id = t.id
   group by t.user_id, t.day, t.variant
  union all
  select t.user_id, t.day, t.variant, p.outcome, 0, count(*)::bigint, sum(p.n)::bigint, sum(p.v)
    from tagged t join per_name p on p.id = t.id
   group by t.user_id, t.day, t.variant, p.outcome
$$;
revoke all on function rec_internal.series_user_day_counts(text, date, date)
  from public, anon, authenticated, service_role;

-- Per day of the window and per uncapped metric and variant: the sums
-- rec_experiment_results_stats returns for the window [from_day, day]
-- (users, Σn, Σn², Σa, Σa², Σan and, when CUPED is on, the pre-period sums).
create function public.rec_experiment_results_series_stats(p_experiment_key text, p_from date default null,
                                                           p_to date default null)
returns jsonb
language plpgsql stable security definer
set search_path = ''
set work_mem = '64MB'
set jit = off
-- The CTEs' row counts are unknown to the planner (it guesses 1), and a
-- nested loop over users x user-days is quadratic: hash joins always.
set enable_nestloop = off
as $$
declare
  e public.rec_experiments := rec_internal.experiment(p_experiment_key);
  v_from date := coalesce(p_from, (coalesce(e.started_at, e.created_at) at time zone 'UTC')::date);
  v_to date := coalesce(p_to, (coalesce(e.ended_at, now()) at time zone 'UTC')::date);
  pre_to date := least((e.started_at at time zone 'UTC')::date, v_from) - 1;
  pre_from date := pre_to - e.cuped_days + 1;
  needs_pre boolean := e.cuped_days > 0 and e.started_at is not null;
  defs jsonb := rec_internal.experiment_metric_definitions(e.id);
  stats jsonb;
begin
  if v_from > v_to then
    raise exception 'from_day (%) is after to_day (%)', v_from, v_to using errcode = '22023',
      hint = 'Give a window whose first day is on or before its last day.';
  end if;
  with raw as materialized (
    select * from rec_internal.series_user_day_counts(e.key, v_from, v_to)
  ), per_variant as (
    select r.user_id, r.variant, min(r.day) as first_day
      from raw r where r.outcome is null group by r.user_id, r.variant
  ), users as materialized (
    -- in from the first day; out from the day a second variant appears
    select u.user_id,
           (array_agg(u.variant order by u.first_day, u.variant))[1] as variant,
           min(u.first_day) as first_day,
           coalesce((array_agg(u.first_day order by u.first_day))[2], 'infinity'::date) as out_day
      from per_variant u
     where u.user_id not in (select m.user_id from public.rec_user_experiment_assignments m
                              where m.experiment_id = e.id and m.assignment_mode = 'manual')
     group by u.user_id
  ), live as (
    select u.* from users u where u.out_day > u.first_day
  ), def as (
    select d.value->>'metric' as metric, d.value->>'kind' as kind, d.value->>'outcome' as outcome
      from jsonb_array_elements(defs) d
     where d.value->>'capping' is null
  ), pre as materialized (
    select p.user_id, p.outcome, p.impressions as n, p.engaged_impressions as e, p.outcomes as o,
           p.outcome_value as v
      from rec_internal.cuped_user_pre_counts(pre_from, pre_to) p
      join live u on u.user_id = p.user_id
     where needs_pre
  ), seen as (
    -- the user's days with their one variant, before leaving
    select r.user_id, r.day, r.variant, r.impressions from raw r join live u on u.user_id = r.user_id
     where r.outcome is null and r.variant = u.variant and r.day < u.out_day
  ), per_day as (
    -- per metric, user and seen day: that day's n and additive quantity q
    select d.metric, d.kind, s.user_id, s.day, s.impressions::numeric as n,
           coalesce(case d.kind
                      when 'impression_rate' then q.engaged_impressions
                      when 'user_rate' then q.engaged_impressions
                      when 'per_user_count' then q.outcomes
                      else q.outcome_value end, 0)::numeric as q
      from def d
     cross join seen s
      -- (coalesce: an equality the planner can hash; outcome names are never empty)
      left join raw q on q.user_id = s.user_id and q.day = s.day and q.variant = s.variant
                     and coalesce(q.outcome, '') = coalesce(d.outcome, '')
  ), running as (
    select p.metric, p.kind, p.user_id, p.day,
           sum(p.n) over w as n, sum(p.q) over w as q
      from per_day p
    window w as (partition by p.metric, p.user_id order by p.day)
  ), terms as (
    -- the user's terms after this day; a is the metric's per-user value
    select r.metric, r.user_id, r.day, r.n,
           case when r.kind = 'user_rate' then (r.q > 0)::int::numeric else r.q end as a,
           coalesce(pa.n, 0)::numeric as m,
           case r.kind
             when 'impression_rate' then coalesce(case when d.outcome is null then pa.e else px.e end, 0)
             when 'per_user_count' then coalesce(case when d.outcome is null then pa.o else px.o end, 0)
             when 'user_rate' then (coalesce(case when d.outcome is null then pa.e else px.e end, 0) > 0)::int
             else coalesce(case when d.outcome is null then pa.v else px.v end, 0)
           end::numeric as x
      from running r
      join def d on d.metric = r.metric
      left join pre pa on pa.outcome is null and pa.user_id = r.user_id
      left join pre px on px.outcome = d.outcome and px.user_id = r.user_id
  ), vec as (
    select t.metric, t.user_id, t.day,
           1::numeric as users, t.n as sum_n, t.n * t.n as sum_nn, t.a as sum_a,
           t.a * t.a as sum_aa, t.a * t.n as sum_an, t.m as sum_m, t.m * t.m as sum_mm,
           t.x as sum_x, t.x * t.x as sum_xx, t.x * t.m as sum_xm, t.a * t.x as sum_ax,
           t.a * t.m as sum_am, t.n * t.x as sum_nx, t.n * t.m as sum_nm
      from terms t
  ), changes as (
    -- each seen day adds the change of the user's terms; leaving takes them back out
    select v.metric, u.variant, v.day,
           v.users - coalesce(lag(v.users) over w, 0) as users,
           v.sum_n - coalesce(lag(v.sum_n) over w, 0) as sum_n,
           v.sum_nn - coalesce(lag(v.sum_nn) over w, 0) as sum_nn,
           v.sum_a - coalesce(lag(v.sum_a) over w, 0) as sum_a,
           v.sum_aa - coalesce(lag(v.sum_aa) over w, 0) as sum_aa,
           v.sum_an - coalesce(lag(v.sum_an) over w, 0) as sum_an,
           v.sum_m - coalesce(lag(v.sum_m) over w, 0) as sum_m,
           v.sum_mm - coalesce(lag(v.sum_mm) over w, 0) as sum_mm,
           v.sum_x - coalesce(lag(v.sum_x) over w, 0) as sum_x,
           v.sum_xx - coalesce(lag(v.sum_xx) over w, 0) as sum_xx,
           v.sum_xm - coalesce(lag(v.sum_xm) over w, 0) as sum_xm,
           v.sum_ax - coalesce(lag(v.sum_ax) over w, 0) as sum_ax,
           v.sum_am - coalesce(lag(v.sum_am) over w, 0) as sum_am,
           v.sum_nx - coalesce(lag(v.sum_nx) over w, 0) as sum_nx,
           v.sum_nm - coalesce(lag(v.sum_nm) over w, 0) as sum_nm
      from vec v join live u on u.user_id = v.user_id
    window w as (partition by v.metric, v.user_id order by v.day)
    union all
    select l.metric, u.variant, u.out_day,
           -l.users, -l.sum_n, -l.sum_nn, -l.sum_a, -l.sum_aa, -l.sum_an, -l.sum_m, -l.sum_mm,
           -l.sum_x, -l.sum_xx, -l.sum_xm, -l.sum_ax, -l.sum_am, -l.sum_nx, -l.sum_nm
      from (select distinct on (v.metric, v.user_id) v.*
              from vec v order by v.metric, v.user_id, v.day desc) l
      join live u on u.user_id = l.user_id
     where u.out_day <= v_to
  ), deltas as (
    select c.metric, c.variant, c.day,
           sum(c.users) as users, sum(c.sum_n) as sum_n, sum(c.sum_nn) as sum_nn,
           sum(c.sum_a) as sum_a, sum(c.sum_aa) as sum_aa, sum(c.sum_an) as sum_an,
           sum(c.sum_m) as sum_m, sum(c.sum_mm) as sum_mm, sum(c.sum_x) as sum_x,
           sum(c.sum_xx) as sum_xx, sum(c.sum_xm) as sum_xm, sum(c.sum_ax) as sum_ax,
           sum(c.sum_am) as sum_am, sum(c.sum_nx) as sum_nx, sum(c.sum_nm) as sum_nm
      from changes c
     group by c.metric, c.variant, c.day
  ), grid as (
    select m.metric, v.variant, g.day::date as day
      from (select distinct d.metric from def d) m
     cross join (select distinct u.variant from live u) v
     cross join generate_series(v_from, v_to, interval '1 day') g(day)
  ), rows as (
    select g.metric, g.variant, g.day,
           sum(coalesce(d.users, 0)) over w as users, sum(coalesce(d.sum_n, 0)) over w as sum_n,
           sum(coalesce(d.sum_nn, 0)) over w as sum_nn, sum(coalesce(d.sum_a, 0)) over w as sum_a,
           sum(coalesce(d.sum_aa, 0)) over w as sum_aa,
           sum(coalesce(d.sum_an, 0)) over w as sum_an, sum(coalesce(d.sum_m, 0)) over w as sum_m,
           sum(coalesce(d.sum_mm, 0)) over w as sum_mm, sum(coalesce(d.sum_x, 0)) over w as sum_x,
           sum(coalesce(d.sum_xx, 0)) over w as sum_xx,
           sum(coalesce(d.sum_xm, 0)) over w as sum_xm,
           sum(coalesce(d.sum_ax, 0)) over w as sum_ax,
           sum(coalesce(d.sum_am, 0)) over w as sum_am,
           sum(coalesce(d.sum_nx, 0)) over w as sum_nx,
           sum(coalesce(d.sum_nm, 0)) over w as sum_nm
      from grid g
      left join deltas d on d.metric = g.metric and d.variant = g.variant and d.day = g.day
    window w as (partition by g.metric, g.variant order by g.day)
  )
  select jsonb_build_object(
           'key', e.key, 'from_day', v_from, 'to_day', v_to,
           'metric_stats', coalesce(jsonb_agg(jsonb_build_object(
              'day', r.day, 'metric', r.metric, 'variant', r.variant,
              'users', r.users, 'sum_n', r.sum_n, 'sum_nn', r.sum_nn, 'sum_a', r.sum_a,
              'sum_aa', r.sum_aa, 'sum_an', r.sum_an, 'sum_m', r.sum_m, 'sum_mm', r.sum_mm,
              'sum_x', r.sum_x, 'sum_xx', r.sum_xx, 'sum_xm', r.sum_xm, 'sum_ax', r.sum_ax,
              'sum_am', r.sum_am, 'sum_nx', r.sum_nx, 'sum_nm', r.sum_nm)
              order by r.day, r.metric, r.variant), '[]'))
    into stats
    from rows r;
  return stats;
end
$$;
comment on function public.rec_experiment_results_series_stats(text, date, date) is
  'Per day d of a window, per uncapped metric and variant: the results sums of the window [from_day, d], in one pass.';
revoke all on function public.rec_experiment_results_series_stats(text, date, date) from public, anon, authenticated;
grant execute on function public.rec_experiment_results_series_stats(text, date, date) to service_role;
