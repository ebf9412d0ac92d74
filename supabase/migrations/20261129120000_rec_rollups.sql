-- Daily rollups: finished UTC days are aggregated once, so metrics and
-- results read a few rows per day instead of every raw impression, and a
-- cheaper impression write path (time-ordered ids, only the indexes reads use).
--
-- Correctness never depends on the refresh job. Every statement that writes
-- rec_impressions or rec_outcomes marks the UTC days it touched in
-- rec_internal.rollup_dirty_days (in the same transaction), and the refresh
-- removes a day from there once it has rebuilt that day's rollup rows. So at
-- any snapshot a day with data is either clean (its rollup rows are exact)
-- or dirty (readers compute it live from the raw tables). Readers union the
-- two; the answer is the live computation's either way.
--
-- Writers and the refresh meet on one advisory lock per day: writers take it
-- shared (never waiting on each other), the refresh tries it exclusively and
-- skips a day some writer is still writing. A writer whose rows the refresh
-- could not see therefore always marks the day dirty after the refresh has
-- committed, and the next refresh redoes it.

-- --- Write path ------------------------------------------------------------

-- UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Ids of
-- consecutive inserts land on the same right-most primary-key pages instead
-- of a random page each, so the index stays cached as the table grows.
-- Works on PostgreSQL 15+ (18 has uuidv7() built in; this is the same layout).
create function rec_internal.uuid_v7() returns uuid
language sql volatile parallel safe set search_path = '' as $$
  -- search_path is empty: every name below resolves in pg_catalog.
  select encode(
           set_bit(set_bit(
             overlay(uuid_send(gen_random_uuid())
                     placing substring(int8send((date_part('epoch', clock_timestamp()) * 1000)::bigint) from 3)
                     from 1 for 6),
             52, 1), 53, 1),
           'hex')::uuid
$$;
comment on function rec_internal.uuid_v7() is 'A time-ordered (version 7) uuid: default of rec_impressions.id.';
revoke all on function rec_internal.uuid_v7() from public, anon, authenticated;
grant execute on function rec_internal.uuid_v7() to service_role;

alter table public.rec_impressions alter column id set default rec_internal.uuid_v7();

-- No read filters impressions by user: metrics and results read by UTC day
-- (rec_impressions_day_idx) and, for finished days, the rollups below.
drop index public.rec_impressions_user_idx;

-- --- Rollup tables (internal: reached through the views and RPCs) ----------

-- Days whose rollup rows are missing or stale: written by the triggers
-- below, emptied by rec_refresh_daily_rollups.
create table rec_internal.rollup_dirty_days (
  day date primary key,
  marked_at timestamptz not null default now()
);
comment on table rec_internal.rollup_dirty_days is
  'UTC days computed live because their rollup rows are missing or stale.';

-- One row per rec_variant_daily_metrics_v1 row of a clean day.
create table rec_internal.rollup_variant_day (
  experiment_key text not null,
  day date not null,
  variant text not null,
  impressions bigint not null,
  users bigint not null,
  outcomes bigint not null,
  engaged_impressions bigint not null,
  outcome_value double precision not null,
  primary key (experiment_key, day, variant)
);
create index rollup_variant_day_day_idx on rec_internal.rollup_variant_day (day);

-- One row per rec_variant_daily_outcomes_v1 row of a clean day.
create table rec_internal.rollup_variant_day_outcome (
  experiment_key text not null,
  day date not null,
  variant text not null,
  outcome text not null,
  outcomes bigint not null,
  engaged_impressions bigint not null,
  users bigint not null,
  outcome_value double precision not null,
  primary key (experiment_key, day, variant, outcome)
);
create index rollup_variant_day_outcome_day_idx on rec_internal.rollup_variant_day_outcome (day);

-- Per user, for results: a user's sums over a window are sums over its days.
create table rec_internal.rollup_user_day (
  experiment_key text not null,
  day date not null,
  user_id uuid not null,
  variant text not null,
  impressions bigint not null,
  engaged_impressions bigint not null,
  outcomes bigint not null,
  primary key (experiment_key, day, user_id, variant)
);

-- The sum of every rollup_user_day row (clean or stale) per (experiment,
-- user, variant), kept in step by rollup_day in the same transaction. A
-- window covering most of an experiment's days reads these (one row per
-- user) minus the few days outside it, so results over an experiment's
-- lifetime cost the same at 10x the impressions.
create table rec_internal.rollup_user_all_days (
  experiment_key text not null,
  user_id uuid not null,
  variant text not null,
  impressions bigint not null,
  engaged_impressions bigint not null,
  outcomes bigint not null,
  primary key (experiment_key, user_id, variant)
);

-- Every impression of a user on a day, tagged or not: results' count of
-- untagged impressions is this minus the user's impressions tagged with the key.
create table rec_internal.rollup_user_total (
  day date not null,
  user_id uuid not null,
  impressions bigint not null,
  primary key (day, user_id)
);

revoke all on rec_internal.rollup_dirty_days, rec_internal.rollup_variant_day,
              rec_internal.rollup_variant_day_outcome, rec_internal.rollup_user_day,
              rec_internal.rollup_user_total, rec_internal.rollup_user_all_days
  from public, anon, authenticated;
-- The metrics views are security_invoker: their readers read these.
grant select on rec_internal.rollup_dirty_days, rec_internal.rollup_variant_day,
                rec_internal.rollup_variant_day_outcome, rec_internal.rollup_user_day,
                rec_internal.rollup_user_total, rec_internal.rollup_user_all_days
  to service_role;

-- Days with data before this migration are dirty until the first refresh.
insert into rec_internal.rollup_dirty_days (day)
select distinct (i.created_at at time zone 'UTC')::date from public.rec_impressions i;

-- --- Dirty marking ---------------------------------------------------------

-- The advisory lock of one UTC day (first key: this feature's namespace).
create function rec_internal.rollup_lock_key(day date) returns integer
language sql immutable parallel safe set search_path = '' as $$
  select day - date '2000-01-01'
$$;
revoke all on function rec_internal.rollup_lock_key(date) from public, anon, authenticated;

create function rec_internal.mark_days_dirty(days date[]) returns void
language plpgsql volatile security definer set search_path = '' as $$
declare
  d date;
begin
  -- Ascending, like the refresh, and shared: writers never wait on each other.
  for d in select distinct x from unnest(days) x where x is not null order by 1 loop
    perform pg_catalog.pg_advisory_xact_lock_shared(7170, rec_internal.rollup_lock_key(d));
  end loop;
  insert into rec_internal.rollup_dirty_days (day)
  select distinct x from unnest(days) x where x is not null
  on conflict (day) do nothing;
end
$$;
revoke all on function rec_internal.mark_days_dirty(date[]) from public, anon, authenticated;

create function rec_internal.impressions_changed() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if tg_op = 'INSERT' then
    perform rec_internal.mark_days_dirty(array(
      select distinct (n.created_at at time zone 'UTC')::date from new_rows n));
  elsif tg_op = 'UPDATE' then
    perform rec_internal.mark_days_dirty(array(
      select (n.created_at at time zone 'UTC')::date from new_rows n
      union select (o.created_at at time zone 'UTC')::date from old_rows o));
  else
    perform rec_internal.mark_days_dirty(array(
      select distinct (o.created_at at time zone 'UTC')::date from old_rows o));
  end if;
  return null;
end
$$;
revoke all on function rec_internal.impressions_changed() from public, anon, authenticated;

-- An outcome counts toward its impression's day. An outcome deleted by its
-- impression's cascade finds no impression here; the impression's own
-- trigger marks that day.
create function rec_internal.outcomes_changed() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if tg_op = 'INSERT' then
    perform rec_internal.mark_days_dirty(array(
      select distinct (i.created_at at time zone 'UTC')::date
        from (select distinct n.impression_id from new_rows n) n
        join public.rec_impressions i on i.id = n.impression_id));
  elsif tg_op = 'UPDATE' then
    perform rec_internal.mark_days_dirty(array(
      select distinct (i.created_at at time zone 'UTC')::date
        from (select n.impression_id from new_rows n union select o.impression_id from old_rows o) n
        join public.rec_impressions i on i.id = n.impression_id));
  else
    perform rec_internal.mark_days_dirty(array(
      select distinct (i.created_at at time zone 'UTC')::date
        from (select distinct o.impression_id from old_rows o) o
        join public.rec_impressions i on i.id = o.impression_id));
  end if;
  return null;
end
$$;
revoke all on function rec_internal.outcomes_changed() from public, anon, authenticated;

-- TRUNCATE has no transition rows: every clean day becomes dirty.
create function rec_internal.rollups_truncated() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  perform rec_internal.mark_days_dirty(array(
    select day from rec_internal.rollup_variant_day
    union select day from rec_internal.rollup_user_total));
  return null;
end
$$;
revoke all on function rec_internal.rollups_truncated() from public, anon, authenticated;

create trigger rec_impressions_rollup_insert after insert on public.rec_impressions
  referencing new table as new_rows for each statement execute function rec_internal.impressions_changed();
create trigger rec_impressions_rollup_update after update on public.rec_impressions
  referencing old table as old_rows new table as new_rows
  for each statement execute function rec_internal.impressions_changed();
create trigger rec_impressions_rollup_delete after delete on public.rec_impressions
  referencing old table as old_rows for each statement execute function rec_internal.impressions_changed();
create trigger rec_impressions_rollup_truncate after truncate on public.rec_impressions
  for each statement execute function rec_internal.rollups_truncated();
create trigger rec_outcomes_rollup_insert after insert on public.rec_outcomes
  referencing new table as new_rows for each statement execute function rec_internal.outcomes_changed();
create trigger rec_outcomes_rollup_update after update on public.rec_outcomes
  referencing old table as old_rows new table as new_rows
  for each statement execute function rec_internal.outcomes_changed();
create trigger rec_outcomes_rollup_delete after delete on public.rec_outcomes
  referencing old table as old_rows for each statement execute function rec_internal.outcomes_changed();
create trigger rec_outcomes_rollup_truncate after truncate on public.rec_outcomes
  for each statement execute function rec_internal.rollups_truncated();

-- --- Building one day ------------------------------------------------------

-- Replace every rollup row of one UTC day with its live aggregate. One
-- statement, so the day's impressions are read once.
create function rec_internal.rollup_day(d date) returns void
language plpgsql volatile set search_path = '' set jit = off set work_mem = '64MB' as $$
begin
  -- The per-user totals lose the day's old rows here and gain its new ones
  -- below. (A total that drops to zero stays, as zeros: readers skip it.)
  insert into rec_internal.rollup_user_all_days as a
  select u.experiment_key, u.user_id, u.variant, -u.impressions, -u.engaged_impressions, -u.outcomes
    from rec_internal.rollup_user_day u
   where u.day = d
     and u.experiment_key in (select v.experiment_key from rec_internal.rollup_variant_day v where v.day = d)
  on conflict (experiment_key, user_id, variant) do update
    set impressions = a.impressions + excluded.impressions,
        engaged_impressions = a.engaged_impressions + excluded.engaged_impressions,
        outcomes = a.outcomes + excluded.outcomes;
  delete from rec_internal.rollup_user_day u
   where u.day = d
     and u.experiment_key in (select v.experiment_key from rec_internal.rollup_variant_day v where v.day = d);
  delete from rec_internal.rollup_variant_day v where v.day = d;
  delete from rec_internal.rollup_variant_day_outcome v where v.day = d;
  delete from rec_internal.rollup_user_total t where t.day = d;

  with imp as materialized (
    select i.id, i.user_id, i.request_context->'experiments' as tags
      from public.rec_impressions i
     where (i.created_at at time zone 'UTC')::date = d
  ), tagged as materialized (
    select imp.id, imp.user_id, t.key as experiment_key, t.value as variant
      from imp cross join lateral jsonb_each_text(imp.tags) t
     where t.value is not null
  ), day_outcomes as materialized (
    select o.impression_id, o.user_id, o.outcome, o.value
      from public.rec_outcomes o
     where o.impression_id in (select imp.id from imp)
  ), per_impression as (
    select o.impression_id, count(*) as outcomes
      from day_outcomes o group by o.impression_id
  ), per_tag as materialized (
    select t.experiment_key, t.variant, t.user_id, p.outcomes
      from tagged t left join per_impression p on p.impression_id = t.id
  ), variant_day as (
    insert into rec_internal.rollup_variant_day
    select t.experiment_key, d, t.variant, count(*), count(distinct t.user_id),
           coalesce(sum(t.outcomes), 0), count(t.outcomes), coalesce(v.outcome_value, 0)
      from per_tag t
      left join (select t2.experiment_key, t2.variant, sum(o.value) as outcome_value
                   from day_outcomes o join tagged t2 on t2.id = o.impression_id
                  group by 1, 2) v
        on v.experiment_key = t.experiment_key and v.variant = t.variant
     group by t.experiment_key, t.variant, v.outcome_value
  ), variant_day_outcome as (
    insert into rec_internal.rollup_variant_day_outcome
    select t.experiment_key, d, t.variant, o.outcome, count(*), count(distinct o.impression_id),
           count(distinct o.user_id), sum(o.value)
      from day_outcomes o join tagged t on t.id = o.impression_id
     group by t.experiment_key, t.variant, o.outcome
  ), user_day as (
    insert into rec_internal.rollup_user_day
    select t.experiment_key, d, t.user_id, t.variant, count(*), count(t.outcomes), coalesce(sum(t.outcomes), 0)
      from per_tag t
     group by t.experiment_key, t.user_id, t.variant
  )
  insert into rec_internal.rollup_user_total
  select d, imp.user_id, count(*) from imp group by imp.user_id;

  insert into rec_internal.rollup_user_all_days as a
  select u.experiment_key, u.user_id, u.variant, u.impressions, u.engaged_impressions, u.outcomes
    from rec_internal.rollup_user_day u
   where u.day = d
     and u.experiment_key in (select v.experiment_key from rec_internal.rollup_variant_day v where v.day = d)
  on conflict (experiment_key, user_id, variant) do update
    set impressions = a.impressions + excluded.impressions,
        engaged_impressions = a.engaged_impressions + excluded.engaged_impressions,
        outcomes = a.outcomes + excluded.outcomes;
end
$$;
revoke all on function rec_internal.rollup_day(date) from public, anon, authenticated;

-- Rebuild every dirty day up to through_day. Each day is rebuilt under its
-- exclusive advisory lock, tried and never awaited: a day some writer or
-- another refresh holds stays dirty (read live) until the next run, so the
-- refresh never blocks traffic, never deadlocks, and concurrent runs never
-- rebuild a day twice. Runs of the refresh itself take turns (one lock for
-- all): each updates the same per-user totals. Returns the number
-- of days rebuilt by this call.
create function public.rec_refresh_daily_rollups(through_day date default current_date - 1)
returns integer
language plpgsql volatile security definer
set search_path = ''
set jit = off
set work_mem = '64MB'
as $$
declare
  d date;
  rebuilt integer := 0;
begin
  perform pg_catalog.pg_advisory_xact_lock(7171, 0);
  for d in select dd.day from rec_internal.rollup_dirty_days dd
            where dd.day <= through_day order by dd.day loop
    continue when not pg_catalog.pg_try_advisory_xact_lock(7170, rec_internal.rollup_lock_key(d));
    -- Still dirty now that the lock is ours? (Another run may have committed it.)
    delete from rec_internal.rollup_dirty_days dd where dd.day = d;
    continue when not found;
    perform rec_internal.rollup_day(d);
    rebuilt := rebuilt + 1;
  end loop;
  return rebuilt;
end
$$;
comment on function public.rec_refresh_daily_rollups(date) is
  'Aggregates finished UTC days (and days changed since) into the rollups; returns days rebuilt.';
revoke all on function public.rec_refresh_daily_rollups(date) from public, anon, authenticated;
grant execute on function public.rec_refresh_daily_rollups(date) to service_role;

-- --- Reads: rollups for clean days, live for dirty ones ---------------------

-- Same rows as the live definition: the live half is the original view
-- restricted to dirty days (reached through rec_impressions_day_idx).
create or replace view public.rec_variant_daily_metrics_v1 with (security_invoker = true) as
select r.day, r.experiment_key, r.variant, r.impressions, r.users, r.outcomes, r.engaged_impressions,
       r.outcome_value
  from rec_internal.rollup_variant_day r
 where not exists (select 1 from rec_internal.rollup_dirty_days dd where dd.day = r.day)
union all
select day, experiment_key, variant,
       sum(impressions)::bigint, sum(users)::bigint, sum(outcomes)::bigint,
       sum(engaged_impressions)::bigint, sum(outcome_value)::double precision
  from (
    select (i.created_at at time zone 'UTC')::date as day, t.key as experiment_key, t.value as variant,
           count(*) as impressions, count(distinct i.user_id) as users,
           0::bigint as outcomes, 0::bigint as engaged_impressions, 0::double precision as outcome_value
      from rec_internal.rollup_dirty_days dd
      join public.rec_impressions i on (i.created_at at time zone 'UTC')::date = dd.day
     cross join lateral jsonb_each_text(i.request_context->'experiments') t
     where t.value is not null
     group by 1, 2, 3
    union all
    select (i.created_at at time zone 'UTC')::date, t.key, t.value,
           0, 0, count(*), count(distinct o.impression_id), sum(o.value)
      from rec_internal.rollup_dirty_days dd
      join public.rec_impressions i on (i.created_at at time zone 'UTC')::date = dd.day
      join public.rec_outcomes o on o.impression_id = i.id
     cross join lateral jsonb_each_text(i.request_context->'experiments') t
     where t.value is not null
     group by 1, 2, 3
  ) live
 group by day, experiment_key, variant;

create or replace view public.rec_variant_daily_outcomes_v1 with (security_invoker = true) as
select r.day, r.experiment_key, r.variant, r.outcome, r.outcomes, r.engaged_impressions, r.users,
       r.outcome_value
  from rec_internal.rollup_variant_day_outcome r
 where not exists (select 1 from rec_internal.rollup_dirty_days dd where dd.day = r.day)
union all
select (i.created_at at time zone 'UTC')::date, t.key, t.value, o.outcome,
       count(*), count(distinct o.impression_id), count(distinct o.user_id), sum(o.value)::double precision
  from rec_internal.rollup_dirty_days dd
  join public.rec_impressions i on (i.created_at at time zone 'UTC')::date = dd.day
  join public.rec_outcomes o on o.impression_id = i.id
 cross join lateral jsonb_each_text(i.request_context->'experiments') t
 where t.value is not null
 group by 1, 2, 3, 4;

-- The chart RPC, as before, without JIT: compiling costs more than the few
-- rows of a rolled-up window (or one live day) take to aggregate.
create or replace function public.rec_experiment_daily_metrics(experiment_key text, from_day date default null,
                                                               to_day date default null)
returns setof public.rec_variant_daily_metrics_v1
language plpgsql stable security definer
set search_path = ''
set plan_cache_mode = force_custom_plan
set work_mem = '64MB'
set enable_incremental_sort = off
set jit = off
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

-- --- Results: per-user sums and untagged impressions ------------------------

-- One row per tagged impression of the dirty days in lo..hi (computed live).
create function rec_internal.results_live_days(p_experiment_key text, lo date, hi date)
returns table (user_id uuid, variant text, impressions bigint, engaged_impressions bigint, outcomes bigint)
language sql stable set search_path = '' as $$
  select i.user_id, i.request_context->'experiments'->>p_experiment_key, 1::bigint,
         (n.outcomes is not null)::int::bigint, coalesce(n.outcomes, 0)
    from rec_internal.rollup_dirty_days dd
    join public.rec_impressions i on (i.created_at at time zone 'UTC')::date = dd.day
    left join lateral (select count(*) as outcomes from public.rec_outcomes o
                        where o.impression_id = i.id having count(*) > 0) n on true
   where dd.day between lo and hi
     and i.request_context->'experiments'->>p_experiment_key is not null
$$;
revoke all on function rec_internal.results_live_days(text, date, date) from public, anon, authenticated;

-- Per (user, variant) of one experiment over the UTC days from..to (null =
-- unbounded): impressions tagged with that variant, those with an outcome,
-- and the outcome rows on them.
create or replace function rec_internal.results_user_variant_counts(p_experiment_key text, p_from date, p_to date)
returns table (user_id uuid, variant text, impressions bigint, engaged_impressions bigint, outcomes bigint)
language plpgsql stable
set search_path = ''
set jit = off
set work_mem = '64MB'
as $$
declare
  lo constant date := coalesce(p_from, '-infinity'::date);
  hi constant date := coalesce(p_to, 'infinity'::date);
  days_in bigint;
  days_out bigint;
begin
  -- Rolled-up days of the experiment inside and outside the window (stale
  -- rows of dirty days count as outside: they are taken back out).
  select count(*) filter (where v.day between lo and hi and dd.day is null),
         count(*) filter (where not (v.day between lo and hi and dd.day is null))
    into days_in, days_out
    from (select distinct r.day from rec_internal.rollup_variant_day r
           where r.experiment_key = p_experiment_key) v
    left join rec_internal.rollup_dirty_days dd on dd.day = v.day;
  if days_out < days_in then
    -- all rolled-up days, minus those not wanted, plus dirty days live
    return query
    select s.user_id, s.variant, sum(s.impressions)::bigint, sum(s.engaged_impressions)::bigint,
           sum(s.outcomes)::bigint
      from (
        select a.user_id, a.variant, a.impressions, a.engaged_impressions, a.outcomes
          from rec_internal.rollup_user_all_days a
         where a.experiment_key = p_experiment_key
        union all
        -- (three index ranges, so the days inside the window are never read)
        select r.user_id, r.variant, -r.impressions, -r.engaged_impressions, -r.outcomes
          from rec_internal.rollup_user_day r
         where r.experiment_key = p_experiment_key and r.day < lo
        union all
        select r.user_id, r.variant, -r.impressions, -r.engaged_impressions, -r.outcomes
          from rec_internal.rollup_user_day r
         where r.experiment_key = p_experiment_key and r.day > hi
        union all
        select r.user_id, r.variant, -r.impressions, -r.engaged_impressions, -r.outcomes
          from rec_internal.rollup_dirty_days dd
          join rec_internal.rollup_user_day r on r.experiment_key = p_experiment_key and r.day = dd.day
         where dd.day between lo and hi
        union all
        select l.user_id, l.variant, l.impressions, l.engaged_impressions, l.outcomes
          from rec_internal.results_live_days(p_experiment_key, lo, hi) l
      ) s
     group by s.user_id, s.variant
    having sum(s.impressions) > 0;
  else
    return query
    select s.user_id, s.variant, sum(s.impressions)::bigint, sum(s.engaged_impressions)::bigint,
           sum(s.outcomes)::bigint
      from (
        select r.user_id, r.variant, r.impressions, r.engaged_impressions, r.outcomes
          from rec_internal.rollup_user_day r
         where r.experiment_key = p_experiment_key
           and r.day between lo and hi
           and not exists (select 1 from rec_internal.rollup_dirty_days dd where dd.day = r.day)
        union all
        select l.user_id, l.variant, l.impressions, l.engaged_impressions, l.outcomes
          from rec_internal.results_live_days(p_experiment_key, lo, hi) l
      ) s
     group by s.user_id, s.variant;
  end if;
end
$$;
revoke all on function rec_internal.results_user_variant_counts(text, date, date) from public, anon, authenticated;

-- Impressions in the UTC days from..to (null = unbounded), created at or
-- after the experiment's started_at (and before ended_at if set), by users
-- with an assignment row for it, carrying no tag for its key. Whole days
-- strictly inside the experiment's lifetime come from the rollups (a user's
-- impressions minus those tagged with the key); the first and last day, and
-- dirty days, are counted live.
create or replace function rec_internal.results_untagged_impressions(p_experiment_key text, p_from date, p_to date)
returns bigint
language sql stable
set search_path = ''
set jit = off
set work_mem = '64MB'
as $$
  with e as (
    select x.id, x.started_at, x.ended_at,
           (x.started_at at time zone 'UTC')::date as first_day,
           coalesce((x.ended_at at time zone 'UTC')::date, 'infinity'::date) as last_day,
           greatest(coalesce(p_from, '-infinity'::date), (x.started_at at time zone 'UTC')::date) as lo,
           least(coalesce(p_to, 'infinity'::date),
                 coalesce((x.ended_at at time zone 'UTC')::date, 'infinity'::date)) as hi
      from public.rec_experiments x
     where x.key = p_experiment_key and x.started_at is not null
  ), assigned as (
    select a.user_id from public.rec_user_experiment_assignments a join e on a.experiment_id = e.id
  ), clean_days as (
    -- whole days inside the lifetime, in the window, with clean rollups (up
    -- to the last rolled-up day; later days have no rollup rows)
    select g.day::date as day
      from e, generate_series(
                greatest(e.lo, e.first_day + 1),
                least(e.hi, e.last_day - 1,
                      coalesce((select max(t.day) from rec_internal.rollup_user_total t), '-infinity'::date)),
                interval '1 day') g(day)
     where not exists (select 1 from rec_internal.rollup_dirty_days dd where dd.day = g.day::date)
  ), live_days as (
    select dd.day from e, rec_internal.rollup_dirty_days dd where dd.day between e.lo and e.hi
    union
    select e.first_day from e where e.first_day between e.lo and e.hi
    union
    select e.last_day from e where e.last_day between e.lo and e.hi
  )
  select coalesce((select sum(t.impressions) from rec_internal.rollup_user_total t
                     join clean_days c on c.day = t.day
                     join assigned a on a.user_id = t.user_id), 0)::bigint
       - coalesce((select sum(r.impressions) from rec_internal.rollup_user_day r
                     join clean_days c on c.day = r.day
                     join assigned a on a.user_id = r.user_id
                    where r.experiment_key = p_experiment_key), 0)::bigint
       + coalesce((select count(*) from live_days l
                     join public.rec_impressions i on (i.created_at at time zone 'UTC')::date = l.day
                     cross join e
                    where i.created_at >= e.started_at
                      and (e.ended_at is null or i.created_at < e.ended_at)
                      and i.request_context->'experiments'->>p_experiment_key is null
                      and i.user_id in (select a.user_id from assigned a)), 0)::bigint
$$;
revoke all on function rec_internal.results_untagged_impressions(text, date, date) from public, anon, authenticated;
