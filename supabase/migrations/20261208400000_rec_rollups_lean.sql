-- Rollups that keep up with production traffic (docs/rollups.md):
--  * reads compute live only the dirty days inside their window, found first
--    and then reached through rec_impressions_day_idx with the days as
--    constants (no plan depends on rollup_dirty_days' statistics);
--  * narrow rows: a (experiment key, variant) pair is one int4 "arm";
--  * per-user results read per-user totals (one row per user and arm) or
--    per-user-day rows, never raw impressions of clean days; untagged
--    impressions are counted once per (experiment, day);
--  * per (user, arm, outcome name) sums for per-metric results;
--  * one day's rebuild is one statement (one read of the day's rows, one
--    delta into the per-user totals), and a procedure commits day by day.
--
-- The rollup tables of 20261129120000 are replaced (their rows are rebuilt
-- from the raw tables: every day with data is dirty until the next refresh).

-- The views keep their columns (rec_experiment_daily_metrics returns the
-- metrics view's row type): they are replaced, then the old tables dropped.
drop function rec_internal.results_live_days(text, date, date);
alter table rec_internal.rollup_variant_day rename to rollup_variant_day_old;
alter table rec_internal.rollup_variant_day_outcome rename to rollup_variant_day_outcome_old;
alter table rec_internal.rollup_user_day rename to rollup_user_day_old;
alter index rec_internal.rollup_variant_day_day_idx rename to rollup_variant_day_old_day_idx;
alter index rec_internal.rollup_variant_day_outcome_day_idx rename to rollup_variant_day_outcome_old_day_idx;
alter index rec_internal.rollup_variant_day_pkey rename to rollup_variant_day_old_pkey;
alter index rec_internal.rollup_variant_day_outcome_pkey rename to rollup_variant_day_outcome_old_pkey;
alter index rec_internal.rollup_user_day_pkey rename to rollup_user_day_old_pkey;

-- --- Tables ------------------------------------------------------------------

-- One id per (experiment key, variant) seen in a tag: rollup rows carry 4
-- bytes instead of two strings.
create table rec_internal.rollup_arms (
  arm_id integer generated always as identity primary key,
  experiment_key text not null,
  variant text not null,
  unique (experiment_key, variant)
);

-- Every day the refresh has rebuilt (clean or dirty again): the days whose
-- rollup rows a change of assignments or of an experiment's lifetime can
-- make stale.
create table rec_internal.rollup_days (
  day date primary key
);

-- One row per rec_variant_daily_metrics_v1 row of a clean day.
create table rec_internal.rollup_variant_day (
  arm_id integer not null,
  day date not null,
  impressions bigint not null,
  users bigint not null,
  outcomes bigint not null,
  engaged_impressions bigint not null,
  outcome_value double precision not null,
  primary key (arm_id, day)
);
create index rollup_variant_day_day_idx on rec_internal.rollup_variant_day (day);

-- One row per rec_variant_daily_outcomes_v1 row of a clean day.
create table rec_internal.rollup_variant_day_outcome (
  arm_id integer not null,
  day date not null,
  outcome text not null,
  outcomes bigint not null,
  engaged_impressions bigint not null,
  users bigint not null,
  outcome_value double precision not null,
  primary key (arm_id, day, outcome)
);
create index rollup_variant_day_outcome_day_idx on rec_internal.rollup_variant_day_outcome (day);

-- Per user, arm and day: the results' raw material. No unique index (the
-- refresh replaces a day's rows in one statement); the (arm, day) index is
-- deduplicated by btree, a few bytes a row.
create table rec_internal.rollup_user_day (
  arm_id integer not null,
  day date not null,
  user_id uuid not null,
  impressions integer not null,
  engaged_impressions integer not null,
  outcomes integer not null
);
create index rollup_user_day_arm_day_idx on rec_internal.rollup_user_day (arm_id, day);

-- Per user, arm, day and outcome name, only where the user had such an
-- outcome: impressions with at least one, the outcome rows, Σ value (numeric:
-- exact, whatever the order of addition).
create table rec_internal.rollup_user_day_outcome (
  arm_id integer not null,
  day date not null,
  user_id uuid not null,
  outcome text not null,
  engaged_impressions integer not null,
  outcomes integer not null,
  outcome_value numeric not null
);
create index rollup_user_day_outcome_arm_day_idx on rec_internal.rollup_user_day_outcome (arm_id, day);

-- The sum of every rollup_user_day row (clean or stale) per (arm, user),
-- kept in step by rollup_day in the same statement. A window covering most
-- of an experiment reads these (one row per user) minus the few days outside
-- it, whatever the traffic.
create table rec_internal.rollup_user_totals (
  arm_id integer not null,
  user_id uuid not null,
  impressions bigint not null,
  engaged_impressions bigint not null,
  outcomes bigint not null,
  primary key (arm_id, user_id)
) with (fillfactor = 50);  -- room on each page: a day's delta updates rows in place (HOT)

-- Untagged impressions (results' health count) per experiment and clean day.
create table rec_internal.rollup_untagged_day (
  experiment_id uuid not null,
  day date not null,
  untagged bigint not null,
  primary key (experiment_id, day)
);

revoke all on rec_internal.rollup_arms, rec_internal.rollup_days, rec_internal.rollup_variant_day,
              rec_internal.rollup_variant_day_outcome, rec_internal.rollup_user_day,
              rec_internal.rollup_user_day_outcome, rec_internal.rollup_user_totals,
              rec_internal.rollup_untagged_day
  from public, anon, authenticated;
-- The metrics views are security_invoker: their readers read these.
grant select on rec_internal.rollup_arms, rec_internal.rollup_days, rec_internal.rollup_variant_day,
                rec_internal.rollup_variant_day_outcome, rec_internal.rollup_user_day,
                rec_internal.rollup_user_day_outcome, rec_internal.rollup_user_totals,
                rec_internal.rollup_untagged_day
  to service_role;

-- Nothing is rolled up yet: every day with data is dirty until the refresh.
insert into rec_internal.rollup_dirty_days (day)
select distinct (i.created_at at time zone 'UTC')::date from public.rec_impressions i
on conflict (day) do nothing;

-- --- Dirty marking beyond impressions and outcomes ----------------------------

-- TRUNCATE has no transition rows: every rolled-up day becomes dirty.
create or replace function rec_internal.rollups_truncated() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  perform rec_internal.mark_days_dirty(array(select r.day from rec_internal.rollup_days r));
  return null;
end
$$;
revoke all on function rec_internal.rollups_truncated() from public, anon, authenticated;

-- Untagged counts depend on assignments (assigned_at) and on experiments'
-- started_at / ended_at: a change reaching back to `since` makes every
-- rolled-up day from its UTC day on dirty. Ordinary traffic never gets
-- here (new assignments are stamped now(); starting and ending stamp now()).
create function rec_internal.mark_rolled_days_since(since timestamptz) returns void
language sql volatile security definer set search_path = '' as $$
  select rec_internal.mark_days_dirty(array(
    select r.day from rec_internal.rollup_days r
     where since is not null and r.day >= (since at time zone 'UTC')::date))
$$;
revoke all on function rec_internal.mark_rolled_days_since(timestamptz) from public, anon, authenticated;

create function rec_internal.assignments_changed() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if tg_op = 'INSERT' then  -- row level, only for rows stamped in the past
    perform rec_internal.mark_rolled_days_since(new.assigned_at);
  elsif tg_op = 'UPDATE' then
    perform rec_internal.mark_rolled_days_since(
      (select min(x.assigned_at) from (select o.assigned_at from old_rows o
                                       union all select n.assigned_at from new_rows n) x));
  else
    perform rec_internal.mark_rolled_days_since((select min(o.assigned_at) from old_rows o));
  end if;
  return null;
end
$$;
revoke all on function rec_internal.assignments_changed() from public, anon, authenticated;

create trigger rec_assignments_rollup_insert after insert on public.rec_user_experiment_assignments
  for each row
  when (new.assigned_at < now()
        or (new.assigned_at at time zone 'UTC')::date < (statement_timestamp() at time zone 'UTC')::date)
  execute function rec_internal.assignments_changed();
create trigger rec_assignments_rollup_update after update on public.rec_user_experiment_assignments
  referencing old table as old_rows new table as new_rows
  for each statement execute function rec_internal.assignments_changed();
create trigger rec_assignments_rollup_delete after delete on public.rec_user_experiment_assignments
  referencing old table as old_rows for each statement execute function rec_internal.assignments_changed();
create trigger rec_assignments_rollup_truncate after truncate on public.rec_user_experiment_assignments
  for each statement execute function rec_internal.rollups_truncated();

create function rec_internal.experiment_lifetime_changed() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  perform rec_internal.mark_rolled_days_since(least(
    case when old.key is distinct from new.key then '-infinity'::timestamptz end,
    case when old.started_at is distinct from new.started_at then least(old.started_at, new.started_at) end,
    case when old.ended_at is distinct from new.ended_at then least(old.ended_at, new.ended_at) end));
  return null;
end
$$;
revoke all on function rec_internal.experiment_lifetime_changed() from public, anon, authenticated;

create trigger rec_experiments_rollup_lifetime after update on public.rec_experiments
  for each row
  when (old.key is distinct from new.key or old.started_at is distinct from new.started_at
        or old.ended_at is distinct from new.ended_at)
  execute function rec_internal.experiment_lifetime_changed();

-- --- Building days --------------------------------------------------------------

drop function rec_internal.rollup_day(date);

-- Replace every rollup row of the given UTC days with their live aggregate:
-- the small tables are emptied for the days, then one statement reads the
-- days' impressions and outcomes once, writes every table and moves the
-- per-user totals by one delta (new rows minus the days' old ones), so a
-- rebuild from scratch touches each total once.
-- The planner's row counts for jsonb_each_text are guesses (100 a row), so
-- it would sort millions of text keys (slow, collation-aware) to group
-- them: hash aggregates and hash joins only (they spill if they must).
create function rec_internal.rollup_days(ds date[]) returns void
language plpgsql volatile set search_path = '' set jit = off set work_mem = '64MB'
set plan_cache_mode = force_custom_plan set enable_sort = off set enable_mergejoin = off as $$
declare
  arms integer[] := array(select a.arm_id from rec_internal.rollup_arms a);
  first_day constant date := (select min(x) from unnest(ds) x);
  last_day constant date := (select max(x) from unnest(ds) x);
begin
  delete from rec_internal.rollup_variant_day v where v.day = any(ds);
  delete from rec_internal.rollup_variant_day_outcome v where v.day = any(ds);
  delete from rec_internal.rollup_user_day_outcome u where u.arm_id = any(arms) and u.day = any(ds);
  delete from rec_internal.rollup_untagged_day u where u.day = any(ds);

  with imp as materialized (
    select i.id, i.user_id, i.created_at, (i.created_at at time zone 'UTC')::date as day,
           i.request_context->'experiments' as tags
      from public.rec_impressions i
     where (i.created_at at time zone 'UTC')::date = any(ds)
  ), per_outcome as materialized (
    -- per impression and outcome name
    -- probed per impression through rec_outcomes_impression_idx: a day's
    -- cost, never a hash of every outcome ever written
    select imp.id as impression_id, o.outcome, count(*) as n, sum(o.value::numeric) as v
      from imp cross join lateral (select x.outcome, x.value from public.rec_outcomes x
                                    where x.impression_id = imp.id) o
     group by imp.id, o.outcome
  ), per_impression as (
    select p.impression_id, sum(p.n) as n from per_outcome p group by p.impression_id
  ), user_tag as materialized (
    -- outcomes joined per impression, then the tags expanded and grouped
    -- at once: the strings are matched to arms per user, not per tag
    select t.key, t.value, i.day, i.user_id, count(*) as impressions, count(p.n) as engaged,
           coalesce(sum(p.n), 0) as outcomes
      from imp i
      left join per_impression p on p.impression_id = i.id
     cross join lateral jsonb_each_text(i.tags) t
     where t.value is not null
     group by t.key, t.value, i.day, i.user_id
  ), user_tag_outcome as materialized (
    select t.key, t.value, i.day, i.user_id, i.outcome, count(*) as engaged, sum(i.n) as outcomes,
           sum(i.v) as total
      from (select p.outcome, p.n, p.v, i.day, i.user_id, i.tags
              from per_outcome p join imp i on i.id = p.impression_id
            offset 0) i  -- the few engaged impressions first, then their tags
      cross join lateral jsonb_each_text(i.tags) t
     where t.value is not null
     group by t.key, t.value, i.day, i.user_id, i.outcome
  ), new_arms as (
    insert into rec_internal.rollup_arms (experiment_key, variant)
    select k.key, k.value from (select distinct u.key, u.value from user_tag u) k
     where not exists (select 1 from rec_internal.rollup_arms a
                        where a.experiment_key = k.key and a.variant = k.value)
    on conflict (experiment_key, variant) do nothing
    returning arm_id, experiment_key, variant
  ), all_arms as materialized (
    select a.arm_id, a.experiment_key, a.variant from rec_internal.rollup_arms a
    union all
    select n.arm_id, n.experiment_key, n.variant from new_arms n
  ), user_day as materialized (
    select a.arm_id, u.day, u.user_id, u.impressions, u.engaged, u.outcomes
      from user_tag u join all_arms a on a.experiment_key = u.key and a.variant = u.value
  ), user_day_outcome as materialized (
    select a.arm_id, u.day, u.user_id, u.outcome, u.engaged, u.outcomes, u.total as value
      from user_tag_outcome u join all_arms a on a.experiment_key = u.key and a.variant = u.value
  ), write_user_day as (
    -- arm by arm on disk, so a read of one arm touches its own pages
    insert into rec_internal.rollup_user_day
    select u.arm_id, u.day, u.user_id, u.impressions, u.engaged, u.outcomes
      from user_day u order by u.day, u.arm_id, u.user_id
  ), write_user_day_outcome as (
    insert into rec_internal.rollup_user_day_outcome
    select u.arm_id, u.day, u.user_id, u.outcome, u.engaged, u.outcomes, u.value
      from user_day_outcome u order by u.day, u.arm_id, u.user_id
  ), arm_value as (
    select u.arm_id, u.day, sum(u.value) as value from user_day_outcome u group by u.arm_id, u.day
  ), write_variant_day as (
    insert into rec_internal.rollup_variant_day
    select u.arm_id, u.day, sum(u.impressions), count(*), sum(u.outcomes), sum(u.engaged),
           coalesce(min(v.value), 0)::double precision
      from user_day u left join arm_value v on v.arm_id = u.arm_id and v.day = u.day
     group by u.arm_id, u.day
  ), write_variant_day_outcome as (
    insert into rec_internal.rollup_variant_day_outcome
    select u.arm_id, u.day, u.outcome, sum(u.outcomes), sum(u.engaged), count(*),
           sum(u.value)::double precision
      from user_day_outcome u
     group by u.arm_id, u.day, u.outcome
  ), alive as (
    select e.id, e.key, e.started_at, e.ended_at
      from public.rec_experiments e
     where e.started_at < ((last_day + 1)::timestamp at time zone 'UTC')
       and (e.ended_at is null or e.ended_at > (first_day::timestamp at time zone 'UTC'))
  ), write_untagged as (
    insert into rec_internal.rollup_untagged_day
    select x.id, i.day, count(*)
      from imp i
     cross join alive x
      join public.rec_user_experiment_assignments a on a.experiment_id = x.id and a.user_id = i.user_id
     where (i.tags->>x.key) is null
       and i.created_at >= x.started_at and i.created_at >= a.assigned_at
       and (x.ended_at is null or i.created_at < x.ended_at)
     group by x.id, i.day
  ), old_user_day as (
    delete from rec_internal.rollup_user_day u
     where u.arm_id = any(arms) and u.day = any(ds)
    returning u.arm_id, u.user_id, u.impressions, u.engaged_impressions, u.outcomes
  ), delta as (
    select c.arm_id, c.user_id, sum(c.impressions) as impressions, sum(c.engaged) as engaged,
           sum(c.outcomes) as outcomes
      from (select u.arm_id, u.user_id, u.impressions, u.engaged, u.outcomes from user_day u
            union all
            select o.arm_id, o.user_id, -o.impressions, -o.engaged_impressions, -o.outcomes
              from old_user_day o) c
     group by c.arm_id, c.user_id
    having sum(c.impressions) <> 0 or sum(c.engaged) <> 0 or sum(c.outcomes) <> 0
  )
  insert into rec_internal.rollup_user_totals as t
  select c.arm_id, c.user_id, c.impressions, c.engaged, c.outcomes from delta c
  on conflict (arm_id, user_id) do update
    set impressions = t.impressions + excluded.impressions,
        engaged_impressions = t.engaged_impressions + excluded.engaged_impressions,
        outcomes = t.outcomes + excluded.outcomes;

  insert into rec_internal.rollup_days (day) select distinct x from unnest(ds) x on conflict (day) do nothing;
end
$$;
revoke all on function rec_internal.rollup_days(date[]) from public, anon, authenticated;

-- Rebuild every dirty day up to through_day in this one transaction, in one
-- pass (see 20261129120000 for the locks). rec_refresh_daily_rollups_by_day
-- commits after each day instead.
create or replace function public.rec_refresh_daily_rollups(through_day date default current_date - 1)
returns integer
language plpgsql volatile security definer
set search_path = ''
set jit = off
set work_mem = '64MB'
as $$
declare
  d date;
  days date[] := array[]::date[];
begin
  perform pg_catalog.pg_advisory_xact_lock(7171, 0);
  for d in select dd.day from rec_internal.rollup_dirty_days dd
            where dd.day <= through_day order by dd.day loop
    continue when not pg_catalog.pg_try_advisory_xact_lock(7170, rec_internal.rollup_lock_key(d));
    -- Still dirty now that the lock is ours? (Another run may have committed it.)
    delete from rec_internal.rollup_dirty_days dd where dd.day = d;
    continue when not found;
    days := days || d;
  end loop;
  if cardinality(days) > 0 then
    perform rec_internal.rollup_days(days);  -- all of them in one pass
  end if;
  return cardinality(days);
end
$$;
comment on function public.rec_refresh_daily_rollups(date) is
  'Aggregates finished UTC days (and days changed since) into the rollups; returns days rebuilt.';
revoke all on function public.rec_refresh_daily_rollups(date) from public, anon, authenticated;
grant execute on function public.rec_refresh_daily_rollups(date) to service_role;

-- The same, one transaction per day, so a long backlog never holds one
-- transaction open and vacuum reclaims as it goes (pg_cron:
-- `call public.rec_refresh_daily_rollups_by_day()`). No SET clause and not
-- security definer: a procedure that commits may have neither.
create procedure public.rec_refresh_daily_rollups_by_day(through_day date default null,
                                                         inout rebuilt integer default 0)
language plpgsql
as $$
declare
  last_day constant date := coalesce(through_day, current_date - 1);
  days date[];
  d date;
begin
  rebuilt := 0;
  days := array(select dd.day from rec_internal.rollup_dirty_days dd
                 where dd.day <= last_day order by dd.day);
  foreach d in array days loop
    rebuilt := rebuilt + public.rec_refresh_daily_rollups(d);
    commit;
  end loop;
end
$$;
comment on procedure public.rec_refresh_daily_rollups_by_day(date, integer) is
  'rec_refresh_daily_rollups, committing after each day; returns days rebuilt.';
revoke all on procedure public.rec_refresh_daily_rollups_by_day(date, integer) from public, anon, authenticated;
grant execute on procedure public.rec_refresh_daily_rollups_by_day(date, integer) to service_role;

-- --- Reads: rollups for clean days, live for the dirty days of the window ------

-- The dirty days in lo..hi, read first: later queries get them as constants.
create function rec_internal.dirty_days_in(lo date, hi date) returns date[]
language sql stable set search_path = '' as $$
  select coalesce(array_agg(dd.day order by dd.day), '{}')
    from rec_internal.rollup_dirty_days dd
   where dd.day between coalesce(lo, '-infinity'::date) and coalesce(hi, 'infinity'::date)
$$;
revoke all on function rec_internal.dirty_days_in(date, date) from public, anon, authenticated;
grant execute on function rec_internal.dirty_days_in(date, date) to service_role;

-- rec_variant_daily_metrics_v1 rows of the given days, from the raw tables
-- (p_key null: every experiment). plan_cache_mode: the days are planned as
-- constants every call, so one dirty day is an index range scan.
create function rec_internal.live_variant_days(p_key text, p_days date[])
returns setof public.rec_variant_daily_metrics_v1
language plpgsql stable set search_path = '' set jit = off set plan_cache_mode = force_custom_plan as $$
begin
  if cardinality(p_days) = 0 then
    return;
  end if;
  return query
  select (i.created_at at time zone 'UTC')::date, t.key, t.value, count(*), count(distinct i.user_id),
         coalesce(sum(n.n), 0)::bigint, count(n.n), coalesce(sum(n.v), 0)::double precision
    from public.rec_impressions i
   cross join lateral (select e.key, e.value from jsonb_each_text(i.request_context->'experiments') e
                        where p_key is null
                       union all
                       select p_key, i.request_context->'experiments'->>p_key where p_key is not null) t
    left join lateral (select count(*) as n, sum(o.value) as v from public.rec_outcomes o
                        where o.impression_id = i.id having count(*) > 0) n on true
   where (i.created_at at time zone 'UTC')::date = any(p_days)
     and t.value is not null
   group by 1, 2, 3;
end
$$;
revoke all on function rec_internal.live_variant_days(text, date[]) from public, anon, authenticated;
grant execute on function rec_internal.live_variant_days(text, date[]) to service_role;

create function rec_internal.live_variant_outcome_days(p_key text, p_days date[])
returns table (day date, experiment_key text, variant text, outcome text, outcomes bigint,
               engaged_impressions bigint, users bigint, outcome_value double precision)
language plpgsql stable set search_path = '' set jit = off set plan_cache_mode = force_custom_plan as $$
begin
  if cardinality(p_days) = 0 then
    return;
  end if;
  return query
  select (i.created_at at time zone 'UTC')::date, t.key, t.value, o.outcome, count(*),
         count(distinct o.impression_id), count(distinct o.user_id), sum(o.value)::double precision
    from public.rec_impressions i
   cross join lateral (select e.key, e.value from jsonb_each_text(i.request_context->'experiments') e
                        where p_key is null
                       union all
                       select p_key, i.request_context->'experiments'->>p_key where p_key is not null) t
   -- probed per impression (offset 0 keeps it a probe): the days' outcomes,
   -- never a hash of every outcome ever written
   cross join lateral (select x.impression_id, x.user_id, x.outcome, x.value from public.rec_outcomes x
                        where x.impression_id = i.id offset 0) o
   where (i.created_at at time zone 'UTC')::date = any(p_days)
     and t.value is not null
   group by 1, 2, 3, 4;
end
$$;
revoke all on function rec_internal.live_variant_outcome_days(text, date[]) from public, anon, authenticated;
grant execute on function rec_internal.live_variant_outcome_days(text, date[]) to service_role;

-- Same rows as the live definition. The clean half is a few rows per day;
-- the live half is every dirty day, each reached through the day index.
create or replace view public.rec_variant_daily_metrics_v1 with (security_invoker = true) as
select r.day, a.experiment_key, a.variant, r.impressions, r.users, r.outcomes, r.engaged_impressions,
       r.outcome_value
  from rec_internal.rollup_variant_day r
  join rec_internal.rollup_arms a on a.arm_id = r.arm_id
 where not exists (select 1 from rec_internal.rollup_dirty_days dd where dd.day = r.day)
union all
select l.day, l.experiment_key, l.variant, l.impressions, l.users, l.outcomes, l.engaged_impressions,
       l.outcome_value
  from rec_internal.live_variant_days(null, rec_internal.dirty_days_in(null, null)) l;

create or replace view public.rec_variant_daily_outcomes_v1 with (security_invoker = true) as
select r.day, a.experiment_key, a.variant, r.outcome, r.outcomes, r.engaged_impressions, r.users,
       r.outcome_value
  from rec_internal.rollup_variant_day_outcome r
  join rec_internal.rollup_arms a on a.arm_id = r.arm_id
 where not exists (select 1 from rec_internal.rollup_dirty_days dd where dd.day = r.day)
union all
select l.day, l.experiment_key, l.variant, l.outcome, l.outcomes, l.engaged_impressions, l.users,
       l.outcome_value
  from rec_internal.live_variant_outcome_days(null, rec_internal.dirty_days_in(null, null)) l;

revoke all on public.rec_variant_daily_metrics_v1, public.rec_variant_daily_outcomes_v1
  from public, anon, authenticated;
grant all on public.rec_variant_daily_metrics_v1, public.rec_variant_daily_outcomes_v1 to service_role;

drop table rec_internal.rollup_variant_day_old, rec_internal.rollup_variant_day_outcome_old,
           rec_internal.rollup_user_day_old, rec_internal.rollup_user_all_days, rec_internal.rollup_user_total;

-- The chart: the experiment's rolled-up rows of the window's clean days,
-- plus its live rows of the window's dirty days.
create or replace function public.rec_experiment_daily_metrics(experiment_key text, from_day date default null,
                                                               to_day date default null)
returns setof public.rec_variant_daily_metrics_v1
language plpgsql stable security definer
set search_path = ''
set plan_cache_mode = force_custom_plan
set work_mem = '64MB'
set jit = off
as $$
declare
  lo constant date := coalesce(from_day, '-infinity'::date);
  hi constant date := coalesce(to_day, 'infinity'::date);
  dirty date[];
begin
  perform rec_internal.experiment(experiment_key);
  if from_day > to_day then
    raise exception 'from_day (%) is after to_day (%)', from_day, to_day using errcode = '22023';
  end if;
  dirty := rec_internal.dirty_days_in(lo, hi);
  return query
    select m.* from (
      select r.day, a.experiment_key, a.variant, r.impressions, r.users, r.outcomes, r.engaged_impressions,
             r.outcome_value
        from rec_internal.rollup_arms a
        join rec_internal.rollup_variant_day r on r.arm_id = a.arm_id and r.day between lo and hi
       where a.experiment_key = rec_experiment_daily_metrics.experiment_key
         and r.day <> all(dirty)
      union all
      select * from rec_internal.live_variant_days(rec_experiment_daily_metrics.experiment_key, dirty)
    ) m
    order by m.day, m.variant;
end
$$;

-- --- Results seams ------------------------------------------------------------

-- The experiment's arms, as the clean half's filter.
create function rec_internal.arms_of(p_experiment_key text) returns integer[]
language sql stable set search_path = '' as $$
  select coalesce(array_agg(a.arm_id), '{}') from rec_internal.rollup_arms a
   where a.experiment_key = p_experiment_key
$$;
revoke all on function rec_internal.arms_of(text) from public, anon, authenticated;

-- One row per (user, variant) of one experiment over the given days, from
-- the raw tables: tagged impressions, those with an outcome, outcome rows.
create function rec_internal.results_live_user_counts(p_experiment_key text, p_days date[])
returns table (user_id uuid, variant text, impressions bigint, engaged_impressions bigint, outcomes bigint)
language plpgsql stable set search_path = '' set jit = off set plan_cache_mode = force_custom_plan as $$
begin
  if cardinality(p_days) = 0 then
    return;
  end if;
  return query
  select s.user_id, s.variant, count(*), count(n.n), coalesce(sum(n.n), 0)::bigint
    from (select i.id, i.user_id, i.request_context->'experiments'->>p_experiment_key as variant
            from public.rec_impressions i
           where (i.created_at at time zone 'UTC')::date = any(p_days)
          offset 0) s
    left join lateral (select count(*) as n from public.rec_outcomes o
                        where o.impression_id = s.id having count(*) > 0) n on true
   where s.variant is not null
   group by 1, 2;
end
$$;
revoke all on function rec_internal.results_live_user_counts(text, date[]) from public, anon, authenticated;

-- Per (user, variant) of one experiment over the UTC days from..to (null =
-- unbounded): impressions tagged with that variant, those with an outcome,
-- and the outcome rows on them. Clean days come from the rollups: the
-- per-user totals minus the days not wanted when the window holds most of
-- the experiment's rolled-up days, else the window's per-user-day rows.
create or replace function rec_internal.results_user_variant_counts(p_experiment_key text, p_from date, p_to date)
returns table (user_id uuid, variant text, impressions bigint, engaged_impressions bigint, outcomes bigint)
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
  rolled date[];  -- the experiment's rolled-up days (clean or stale)
  outside date[];  -- of those, the ones not to count: outside the window or stale
begin
  rolled := array(select distinct r.day from rec_internal.rollup_variant_day r where r.arm_id = any(arms));
  outside := array(select x from unnest(rolled) x where not (x between lo and hi) or x = any(dirty));
  if cardinality(outside) < cardinality(rolled) - cardinality(outside) then
    return query
    select s.user_id, s.variant, sum(s.impressions)::bigint, sum(s.engaged_impressions)::bigint,
           sum(s.outcomes)::bigint
      from (
        select t.user_id, a.variant, t.impressions, t.engaged_impressions, t.outcomes
          from rec_internal.rollup_user_totals t
          join rec_internal.rollup_arms a on a.arm_id = t.arm_id
         where t.arm_id = any(arms)
        union all
        select r.user_id, a.variant, -r.impressions, -r.engaged_impressions, -r.outcomes
          from rec_internal.rollup_user_day r
          join rec_internal.rollup_arms a on a.arm_id = r.arm_id
         where r.arm_id = any(arms) and r.day = any(outside)
        union all
        select l.user_id, l.variant, l.impressions, l.engaged_impressions, l.outcomes
          from rec_internal.results_live_user_counts(p_experiment_key, dirty) l
      ) s
     group by s.user_id, s.variant
    having sum(s.impressions) > 0;
  else
    return query
    select s.user_id, s.variant, sum(s.impressions)::bigint, sum(s.engaged_impressions)::bigint,
           sum(s.outcomes)::bigint
      from (
        select r.user_id, a.variant, r.impressions, r.engaged_impressions, r.outcomes
          from rec_internal.rollup_user_day r
          join rec_internal.rollup_arms a on a.arm_id = r.arm_id
         where r.arm_id = any(arms) and r.day between lo and hi and r.day <> all(dirty)
        union all
        select l.user_id, l.variant, l.impressions, l.engaged_impressions, l.outcomes
          from rec_internal.results_live_user_counts(p_experiment_key, dirty) l
      ) s
     group by s.user_id, s.variant;
  end if;
end
$$;
comment on function rec_internal.results_user_variant_counts(text, date, date) is
  'Per user and tagged variant in a UTC-day window: impressions, engaged impressions, outcomes.';
revoke all on function rec_internal.results_user_variant_counts(text, date, date) from public, anon, authenticated;

-- Per (user, variant, outcome name) of one experiment over the UTC days
-- from..to (null = unbounded): impressions tagged with that variant with at
-- least one outcome of that name, those outcome rows, and Σ value (numeric,
-- exact). Only rows with outcomes. Clean days from rollup_user_day_outcome,
-- dirty days live.
create or replace function rec_internal.results_user_outcome_counts(p_experiment_key text, p_from date, p_to date)
returns table (user_id uuid, variant text, outcome text, engaged_impressions bigint, outcomes bigint,
               outcome_value numeric)
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
  select s.user_id, s.variant, s.outcome, sum(s.engaged)::bigint, sum(s.outcomes)::bigint, sum(s.value)
    from (
      select r.user_id, a.variant, r.outcome, r.engaged_impressions as engaged, r.outcomes,
             r.outcome_value as value
        from rec_internal.rollup_user_day_outcome r
        join rec_internal.rollup_arms a on a.arm_id = r.arm_id
       where r.arm_id = any(arms) and r.day between lo and hi and r.day <> all(dirty)
      union all
      select l.user_id, l.variant, l.outcome, l.engaged, l.outcomes, l.value
        from rec_internal.results_live_user_outcomes(p_experiment_key, dirty) l
    ) s
   group by s.user_id, s.variant, s.outcome;
end
$$;
comment on function rec_internal.results_user_outcome_counts(text, date, date) is
  'Per user, tagged variant and outcome name in a UTC-day window: engaged impressions, outcomes, value.';
revoke all on function rec_internal.results_user_outcome_counts(text, date, date)
  from public, anon, authenticated;

-- results_user_outcome_counts of the given days, from the raw tables.
create function rec_internal.results_live_user_outcomes(p_experiment_key text, p_days date[])
returns table (user_id uuid, variant text, outcome text, engaged bigint, outcomes bigint, value numeric)
language plpgsql stable set search_path = '' set jit = off set plan_cache_mode = force_custom_plan as $$
begin
  if cardinality(p_days) = 0 then
    return;
  end if;
  return query
  select s.user_id, s.variant, o.outcome, count(distinct o.impression_id), count(*), sum(o.value::numeric)
    from (select i.id, i.user_id, i.request_context->'experiments'->>p_experiment_key as variant
            from public.rec_impressions i
           where (i.created_at at time zone 'UTC')::date = any(p_days)
          offset 0) s
   cross join lateral (select x.impression_id, x.outcome, x.value from public.rec_outcomes x
                        where x.impression_id = s.id offset 0) o
   where s.variant is not null
   group by 1, 2, 3;
end
$$;
revoke all on function rec_internal.results_live_user_outcomes(text, date[]) from public, anon, authenticated;

-- Impressions in the UTC days from..to (null = unbounded) by users with an
-- assignment row for the experiment, created at or after both the user's
-- assigned_at and the experiment's started_at (and before ended_at if set),
-- that carry no tag for its key. Clean days: one rolled-up count per day;
-- dirty days: live.
create or replace function rec_internal.results_untagged_impressions(p_experiment_key text, p_from date, p_to date)
returns bigint
language plpgsql stable
set search_path = ''
set jit = off
set work_mem = '64MB'
set plan_cache_mode = force_custom_plan
as $$
declare
  e record;
  lo date;
  hi date;
  dirty date[];
  rolled bigint;
  live bigint;
begin
  select x.id, x.key, x.started_at, x.ended_at into e
    from public.rec_experiments x where x.key = p_experiment_key;
  if e.started_at is null then
    return 0;
  end if;
  lo := greatest(coalesce(p_from, '-infinity'::date), (e.started_at at time zone 'UTC')::date);
  hi := least(coalesce(p_to, 'infinity'::date), coalesce((e.ended_at at time zone 'UTC')::date, 'infinity'::date));
  if lo > hi then
    return 0;
  end if;
  dirty := rec_internal.dirty_days_in(lo, hi);
  select coalesce(sum(u.untagged), 0) into rolled
    from rec_internal.rollup_untagged_day u
   where u.experiment_id = e.id and u.day between lo and hi and u.day <> all(dirty);
  live := 0;
  if cardinality(dirty) > 0 then
    select count(*) into live
      from (select i.user_id, i.created_at from public.rec_impressions i
             where (i.created_at at time zone 'UTC')::date = any(dirty)
               and i.request_context->'experiments'->>e.key is null
               and i.created_at >= e.started_at and (e.ended_at is null or i.created_at < e.ended_at)
            offset 0) i
     cross join lateral (select a.assigned_at from public.rec_user_experiment_assignments a
                          where a.experiment_id = e.id and a.user_id = i.user_id offset 0) a
     where i.created_at >= a.assigned_at;
  end if;
  return rolled + live;
end
$$;
comment on function rec_internal.results_untagged_impressions(text, date, date) is
  'Impressions of assigned users, after their assignment and while the experiment ran, with no tag for it.';
revoke all on function rec_internal.results_untagged_impressions(text, date, date)
  from public, anon, authenticated;

-- --- Write path -----------------------------------------------------------------

-- rec_impressions.id's default, inlinable: no SET clause (a SET makes every
-- call a real function call, 3.1 vs 1.4 µs a row), every name qualified
-- with pg_catalog instead, so the caller's search_path cannot change it.
create or replace function rec_internal.uuid_v7() returns uuid
language sql volatile parallel safe as $$
  select pg_catalog.encode(
           pg_catalog.set_bit(pg_catalog.set_bit(
             pg_catalog.overlay(pg_catalog.uuid_send(pg_catalog.gen_random_uuid()),
                                pg_catalog.substring(pg_catalog.int8send(pg_catalog.int8(
                                  pg_catalog.date_part('epoch', pg_catalog.clock_timestamp())
                                  operator(pg_catalog.*) 1000)), 3),
                                1, 6),
             52, 1), 53, 1),
           'hex')::pg_catalog.uuid
$$;
comment on function rec_internal.uuid_v7() is 'A time-ordered (version 7) uuid: default of rec_impressions.id.';
revoke all on function rec_internal.uuid_v7() from public, anon, authenticated;
grant execute on function rec_internal.uuid_v7() to service_role;
