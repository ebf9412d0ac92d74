-- Impressions and outcomes are checked when they are written (SQLSTATE 23514,
-- a message naming the field):
--   - request_context.experiments is an object whose values are strings
--     (variant names; numbers, null or objects would become variant names);
--   - an impression is dated at most one day ahead of the database clock
--     (a far-future day would stay in the rollups' dirty list for good);
--   - an outcome's value is finite (NaN or ±Infinity poison every sum);
--   - an outcome's user_id is its impression's user_id, and it is not dated
--     before its impression.
--
-- Only new and updated rows are checked: the statement-level rollup
-- triggers, which already read each statement's rows (and, for outcomes,
-- join them to their impressions), check them in the same pass. Rows
-- stored before this migration are neither scanned nor refused, and no
-- table is locked beyond what `create or replace function` takes.
--
-- Redefines rec_internal.impressions_changed() and
-- rec_internal.outcomes_changed() from the rollups migration; their dirty-
-- day marking is unchanged.

-- The first problem of a request_context, as a sentence; null when it is fine.
-- The object-ness of request_context and of experiments is the table's own check.
create function rec_internal.context_problem(request_context jsonb) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select format('request_context.experiments.%s must be a string (a variant name), not %s',
                e.key, e.value::text)
    from pg_catalog.jsonb_each(
           case when pg_catalog.jsonb_typeof(request_context->'experiments') = 'object'
                then request_context->'experiments' end) e
   where pg_catalog.jsonb_typeof(e.value) <> 'string'
   limit 1;
$$;
revoke all on function rec_internal.context_problem(jsonb) from public, anon, authenticated, service_role;

create or replace function rec_internal.impressions_changed() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  latest timestamptz := pg_catalog.statement_timestamp() + interval '1 day';
  bad record;
begin
  if tg_op in ('INSERT', 'UPDATE') then
    select n.id, n.created_at, rec_internal.context_problem(n.request_context) as problem into bad
      from new_rows n
     where n.created_at > latest or rec_internal.context_problem(n.request_context) is not null
     limit 1;
    if found and bad.problem is not null then
      raise exception 'rec_impressions.%', bad.problem
        using errcode = '23514', detail = format('impression %s', bad.id),
              hint = 'Tag impressions with the {experiment_key: variant} map rec_assign_variants returns.';
    elsif found then
      raise exception 'rec_impressions.created_at must be at most one day ahead of the database clock (%)',
        pg_catalog.statement_timestamp()
        using errcode = '23514', detail = format('impression %s is dated %s', bad.id, bad.created_at),
              hint = 'Leave created_at to its default, or send the time the recommendation was served.';
    end if;
  end if;
  if tg_op = 'UPDATE' then
    -- An updated impression must still fit the outcomes that point at it.
    select n.id, x.id as outcome_id,
           case when x.user_id <> n.user_id then 'user_id' else 'created_at' end as field into bad
      from new_rows n join public.rec_outcomes x on x.impression_id = n.id
     where x.user_id <> n.user_id or x.created_at < n.created_at
     limit 1;
    if found then
      raise exception 'rec_impressions.%: the impression no longer fits its outcome %', bad.field, bad.outcome_id
        using errcode = '23514', detail = format(
          'an outcome has its impression''s user_id and is not dated before it (impression %s)', bad.id);
    end if;
  end if;
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

-- Inserted or updated outcomes, joined once to their impressions: the
-- checks and the days to mark dirty come from the same pass.
create or replace function rec_internal.outcomes_changed() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  days date[];
  bad_value jsonb;
  bad_user jsonb;
  bad_time jsonb;
begin
  if tg_op = 'DELETE' then
    -- An outcome deleted by its impression's cascade finds no impression
    -- here; the impression's own trigger marks that day.
    perform rec_internal.mark_days_dirty(array(
      select distinct (i.created_at at time zone 'UTC')::date
        from (select distinct o.impression_id from old_rows o) o
        join public.rec_impressions i on i.id = o.impression_id));
    return null;
  end if;
  select pg_catalog.array_agg(distinct (i.created_at at time zone 'UTC')::date),
         (pg_catalog.array_agg(pg_catalog.jsonb_build_object('impression', n.impression_id, 'value', n.value))
            filter (where n.value in ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)))[1],
         (pg_catalog.array_agg(pg_catalog.jsonb_build_object(
            'impression', n.impression_id, 'expected', i.user_id, 'got', n.user_id))
            filter (where n.user_id <> i.user_id))[1],
         (pg_catalog.array_agg(pg_catalog.jsonb_build_object(
            'impression', n.impression_id, 'expected', i.created_at, 'got', n.created_at))
            filter (where n.created_at < i.created_at))[1]
    into days, bad_value, bad_user, bad_time
    -- One primary-key probe per row (offset 0 keeps it a nested loop: a merge
    -- join would walk the impressions index from its start every statement).
    from new_rows n
    cross join lateral (select x.user_id, x.created_at from public.rec_impressions x
                         where x.id = n.impression_id offset 0) i;
  if bad_value is not null then
    raise exception 'rec_outcomes.value must be a finite number, not %', bad_value->>'value'
      using errcode = '23514', detail = format('outcome of impression %s', bad_value->>'impression');
  elsif bad_user is not null then
    raise exception 'rec_outcomes.user_id must be the user_id of its impression'
      using errcode = '23514', detail = format('impression %s is user %s''s; the outcome names %s',
              bad_user->>'impression', bad_user->>'expected', bad_user->>'got');
  elsif bad_time is not null then
    raise exception 'rec_outcomes.created_at must not be before its impression''s created_at'
      using errcode = '23514', detail = format('impression %s was created at %s; the outcome is dated %s',
              bad_time->>'impression', bad_time->>'expected', bad_time->>'got');
  end if;
  if tg_op = 'UPDATE' then
    days := days || array(
      select (i.created_at at time zone 'UTC')::date
        from (select distinct o.impression_id from old_rows o) o
        join public.rec_impressions i on i.id = o.impression_id);
  end if;
  perform rec_internal.mark_days_dirty(days);
  return null;
end
$$;
