-- Per-variant daily metrics (docs/reference.md §4). Impressions are tagged with
-- the {experiment_key: variant} map in request_context.experiments; an
-- impression tagged with two experiments counts once in each. Outcomes
-- count toward the impression's UTC day, whenever they happened.

-- Two branches, summed per (day, experiment, variant): impressions and their
-- distinct users; outcomes joined to their impressions. As a UNION ALL under
-- the grouping, a filter on day or experiment_key reaches both branches, so
-- a week of one experiment reads that week's impressions (day index) and
-- only their outcomes (impression_id index, or one hash join when the week
-- is most of the table), never every outcome ever recorded.
create view public.rec_variant_daily_metrics_v1 with (security_invoker = true) as
select day, experiment_key, variant,
       sum(impressions)::bigint as impressions,
       sum(users)::bigint as users,
       sum(outcomes)::bigint as outcomes,
       sum(engaged_impressions)::bigint as engaged_impressions,
       sum(outcome_value)::double precision as outcome_value
  from (
    select (i.created_at at time zone 'UTC')::date as day, t.key as experiment_key, t.value as variant,
           count(*) as impressions, count(distinct i.user_id) as users,
           0::bigint as outcomes, 0::bigint as engaged_impressions, 0::double precision as outcome_value
      from public.rec_impressions i
     cross join lateral jsonb_each_text(i.request_context->'experiments') t
     where t.value is not null
     group by 1, 2, 3
    union all
    select (i.created_at at time zone 'UTC')::date, t.key, t.value,
           0, 0, count(*), count(distinct o.impression_id), sum(o.value)
      from public.rec_outcomes o
      join public.rec_impressions i on i.id = o.impression_id
     cross join lateral jsonb_each_text(i.request_context->'experiments') t
     where t.value is not null
     group by 1, 2, 3
  ) parts
 group by day, experiment_key, variant;
comment on view public.rec_variant_daily_metrics_v1 is
  'Impressions, users, outcomes and engaged impressions per experiment variant and UTC day.';

create view public.rec_variant_daily_outcomes_v1 with (security_invoker = true) as
select (i.created_at at time zone 'UTC')::date as day,
       t.key as experiment_key,
       t.value as variant,
       o.outcome,
       count(*) as outcomes,
       count(distinct o.impression_id) as engaged_impressions,
       count(distinct o.user_id) as users,
       sum(o.value)::double precision as outcome_value
  from public.rec_outcomes o
  join public.rec_impressions i on i.id = o.impression_id
 cross join lateral jsonb_each_text(i.request_context->'experiments') t
 where t.value is not null
 group by 1, 2, 3, 4;
comment on view public.rec_variant_daily_outcomes_v1 is
  'Outcomes per experiment variant, UTC day of the impression, and outcome type.';

-- For charts: one experiment's rows. The day filter reaches the
-- rec_impressions_day_idx expression index in both branches of the view. A custom plan
-- every call: the cached generic plan cannot see the day range and was 2x
-- slower (bench/); enough memory that the per-variant sort of a week of
-- impressions stays off disk; and no incremental sort, which PostgreSQL 16+
-- picks for the distinct-users count over the day index: serial, and 1.5x
-- slower than the parallel full sort on a week of 1M impressions (bench/).
create function public.rec_experiment_daily_metrics(experiment_key text, from_day date default null,
                                                    to_day date default null)
returns setof public.rec_variant_daily_metrics_v1
language plpgsql stable security definer
set search_path = ''
set plan_cache_mode = force_custom_plan
set work_mem = '64MB'
set enable_incremental_sort = off
as $$
begin
  perform rec_internal.experiment(experiment_key);
  if from_day > to_day then
    raise exception 'from_day (%) is after to_day (%)', from_day, to_day using errcode = '22023';
  end if;
  return query
    select * from public.rec_variant_daily_metrics_v1 m
     where m.experiment_key = rec_experiment_daily_metrics.experiment_key
       and m.day >= coalesce(from_day, '-infinity'::date)
       and m.day <= coalesce(to_day, 'infinity'::date)
     order by m.day, m.variant;
end
$$;
comment on function public.rec_experiment_daily_metrics(text, date, date) is
  'Daily per-variant metrics of one experiment for charts.';
