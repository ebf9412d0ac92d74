-- Experiment results (docs/reference.md §8): per-variant sufficient statistics
-- over users, the unit of randomisation, plus the health counts. The
-- formulas (rates, variances, p-values, intervals, SRM) live in Python
-- (shared/results.py); the database returns only sums, so both stay exact.

-- Per user and per variant the user was tagged with in the window: tagged
-- impressions, those with at least one outcome, and their outcome rows. An
-- outcome counts toward its impression's UTC day, whenever it happened.
-- The seam the results RPC reads; it may later be answered from daily
-- rollups, so keep the signature.
create function rec_internal.results_user_variant_counts(p_experiment_key text, p_from date, p_to date)
returns table (user_id uuid, variant text, impressions bigint, engaged_impressions bigint, outcomes bigint)
language sql stable
-- No SET clause (every name is schema-qualified): that keeps the function
-- inlinable, so the caller's (custom) plan sees the window's days as
-- constants; called as a black box it planned with generic parameters and
-- was slower (bench/).
as $$
  -- One read of the window's impressions through the UTC-day index; the
  -- tag is extracted once per row (OFFSET 0 keeps the subquery whole, so the
  -- filter reuses it). Outcomes are counted per impression in one hash
  -- aggregate over the outcomes table and hash-joined: outcomes are few next
  -- to impressions, and narrowing them first by a join back to the window's
  -- impressions was not faster (bench/).
  select s.user_id, s.variant, count(*), count(o.impression_id), coalesce(sum(o.n), 0)::bigint
    from (select i.user_id, i.id, i.request_context->'experiments'->>p_experiment_key as variant
            from public.rec_impressions i
           where (i.created_at at time zone 'UTC')::date between p_from and p_to
          offset 0) s
    left join (select x.impression_id, count(*) as n
                 from public.rec_outcomes x
                group by x.impression_id) o on o.impression_id = s.id
   where s.variant is not null
   group by s.user_id, s.variant
$$;
comment on function rec_internal.results_user_variant_counts(text, date, date) is
  'Per user and tagged variant in a UTC-day window: impressions, engaged impressions, outcomes.';

-- Impressions in the window, while the experiment ran, by users with an
-- assignment row for it, that carry no tag for its key: the recommender
-- forgot to tag them. Zero before the experiment started.
create function rec_internal.results_untagged_impressions(p_experiment_key text, p_from date, p_to date)
returns bigint
language sql stable
set search_path = ''
as $$
  select count(*)
    from public.rec_experiments e
    join public.rec_user_experiment_assignments a on a.experiment_id = e.id
    join public.rec_impressions i on i.user_id = a.user_id
                                 and i.created_at >= e.started_at
                                 and (e.ended_at is null or i.created_at < e.ended_at)
   where e.key = p_experiment_key
     and (i.created_at at time zone 'UTC')::date between p_from and p_to
     and i.request_context->'experiments'->>p_experiment_key is null
$$;
comment on function rec_internal.results_untagged_impressions(text, date, date) is
  'Impressions of assigned users while the experiment ran that carry no tag for it.';

-- The answer's raw material, in one read of the window's tagged impressions:
-- per variant, over analysed users (exposed, not overridden, one variant
-- only), N and the sums Σn, Σe, Σo, Σn², Σe², Σo², Σne, Σ(e>0); and the
-- health counts. Sums are numeric (exact). The window defaults to the
-- started_at day through the ended_at day (or today), in UTC.
create function public.rec_experiment_results_stats(p_experiment_key text, p_from date default null,
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
  stats jsonb;
begin
  if v_from > v_to then
    raise exception 'from_day (%) is after to_day (%)', v_from, v_to using errcode = '22023',
      hint = 'Give a window whose first day is on or before its last day.';
  end if;
  with per_user as (
    select c.user_id, count(*) as variants, min(c.variant) as variant,
           sum(c.impressions) as n, sum(c.engaged_impressions) as en, sum(c.outcomes) as o
      from rec_internal.results_user_variant_counts(e.key, v_from, v_to) c
     group by c.user_id
  ), flagged as (
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
  ), per_variant as (
    select f.variant, count(*) as users, sum(f.n) as sum_n, sum(f.en) as sum_e, sum(f.o) as sum_o,
           sum(f.n * f.n) as sum_nn, sum(f.en * f.en) as sum_ee, sum(f.o * f.o) as sum_oo,
           sum(f.n * f.en) as sum_ne, count(*) filter (where f.en > 0) as engaged_users
      from flagged f
     where not f.overridden and not f.crossover
     group by f.variant
  )
  select jsonb_build_object(
           'key', e.key, 'from_day', v_from, 'to_day', v_to, 'variants', e.variants,
           'stats', coalesce((select jsonb_agg(to_jsonb(v) order by v.variant) from per_variant v), '[]'),
           'health', to_jsonb(h) || jsonb_build_object(
             'assigned_users', (select count(*) from public.rec_user_experiment_assignments a
                                 where a.experiment_id = e.id),
             'untagged_impressions', rec_internal.results_untagged_impressions(e.key, v_from, v_to)))
    into stats
    from health h;
  return stats;
end
$$;
comment on function public.rec_experiment_results_stats(text, date, date) is
  'Per-variant sufficient statistics over analysed users and health counts of one experiment in a UTC-day window.';

revoke all on function rec_internal.results_user_variant_counts(text, date, date),
                       rec_internal.results_untagged_impressions(text, date, date)
  from public, anon, authenticated;
revoke all on function public.rec_experiment_results_stats(text, date, date) from public, anon, authenticated;
grant execute on function public.rec_experiment_results_stats(text, date, date) to service_role;
