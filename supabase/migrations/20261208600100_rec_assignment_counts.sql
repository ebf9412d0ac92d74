-- Assignment counts per (experiment, variant, mode), kept as assignments
-- change, in the same transaction, so the experiment list and detail read a
-- handful of rows instead of counting every assignment on every call.
--
-- The assignment insert is the recommender's hot path. One counter row per
-- (experiment, variant, mode) would be updated by every new user and hold
-- its row lock until commit, serialising concurrent first calls. So the
-- counts are sharded: each backend adds to the shard of its process id
-- (one transaction at a time per backend, so concurrent transactions
-- rarely share a shard row), and readers sum the shards. Deltas are signed:
-- a row deleted by another backend than the one that inserted it leaves
-- one shard negative and the sum exact.

-- No foreign key to rec_experiments: it would make `truncate rec_experiments`
-- fail on the foreign key before the audited-writes trigger can refuse it
-- with its message. Counts go with their experiment by a trigger instead.
create table rec_internal.assignment_counts (
  experiment_id uuid not null,
  variant text not null,
  assignment_mode text not null,
  shard smallint not null,
  users bigint not null,
  primary key (experiment_id, variant, assignment_mode, shard)
) with (fillfactor = 50);  -- room for HOT updates: counters are updated, never moved
comment on table rec_internal.assignment_counts is
  'Signed assignment counts per (experiment, variant, mode, shard); the sum over shards is the live count.';
revoke all on rec_internal.assignment_counts from public, anon, authenticated, service_role;

-- Statement-level triggers with transition tables: one upsert per statement
-- and (experiment, variant, mode), however many rows the statement touched
-- (a reassigning rotation deletes a whole experiment's auto rows at once).
-- The shard is pid % 32: enough that a connection pool's backends
-- (consecutive pids) do not share one, few enough that a read sums at most
-- 32 rows per (experiment, variant, mode).
-- Sorted, so two statements that share a shard take its rows in one order.
create function rec_internal.count_inserted_assignments() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  insert into rec_internal.assignment_counts as c (experiment_id, variant, assignment_mode, shard, users)
  select n.experiment_id, n.variant, n.assignment_mode, (pg_catalog.pg_backend_pid() % 32)::smallint, count(*)
    from new_rows n
   group by n.experiment_id, n.variant, n.assignment_mode
   order by 1, 2, 3
  on conflict (experiment_id, variant, assignment_mode, shard) do update set users = c.users + excluded.users;
  return null;
end
$$;

-- An override (auto → manual, or another variant) moves one user between
-- counts; updates that change neither variant nor mode net to nothing.
create function rec_internal.count_updated_assignments() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  insert into rec_internal.assignment_counts as c (experiment_id, variant, assignment_mode, shard, users)
  select d.experiment_id, d.variant, d.assignment_mode, (pg_catalog.pg_backend_pid() % 32)::smallint, sum(d.delta)
    from (select o.experiment_id, o.variant, o.assignment_mode, -1 as delta from old_rows o
          union all
          select n.experiment_id, n.variant, n.assignment_mode, 1 from new_rows n) d
   group by d.experiment_id, d.variant, d.assignment_mode
  having sum(d.delta) <> 0
   order by 1, 2, 3
  on conflict (experiment_id, variant, assignment_mode, shard) do update set users = c.users + excluded.users;
  return null;
end
$$;

-- Rows deleted with their experiment (the cascade) need no count: the
-- experiment's counts go with it (below).
create function rec_internal.count_deleted_assignments() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  insert into rec_internal.assignment_counts as c (experiment_id, variant, assignment_mode, shard, users)
  select o.experiment_id, o.variant, o.assignment_mode, (pg_catalog.pg_backend_pid() % 32)::smallint, -count(*)
    from old_rows o
   where exists (select 1 from public.rec_experiments x where x.id = o.experiment_id)
   group by o.experiment_id, o.variant, o.assignment_mode
   order by 1, 2, 3
  on conflict (experiment_id, variant, assignment_mode, shard) do update set users = c.users + excluded.users;
  return null;
end
$$;

create function rec_internal.count_truncated_assignments() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  delete from rec_internal.assignment_counts;
  return null;
end
$$;

create function rec_internal.drop_experiment_counts() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  delete from rec_internal.assignment_counts c where c.experiment_id in (select o.id from old_rows o);
  return null;
end
$$;

create trigger rec_experiments_drop_counts
  after delete on public.rec_experiments
  referencing old table as old_rows
  for each statement execute function rec_internal.drop_experiment_counts();

revoke all on function rec_internal.drop_experiment_counts(), rec_internal.count_inserted_assignments(),
  rec_internal.count_updated_assignments(), rec_internal.count_deleted_assignments(),
  rec_internal.count_truncated_assignments()
  from public, anon, authenticated, service_role;

-- Triggers and backfill in one statement (one transaction even when the
-- migration runs statement by statement): CREATE TRIGGER locks out writers
-- until commit, so the backfill counts exactly the rows no trigger saw.
do $$
begin
  create trigger rec_assignments_count_insert
    after insert on public.rec_user_experiment_assignments
    referencing new table as new_rows
    for each statement execute function rec_internal.count_inserted_assignments();
  create trigger rec_assignments_count_update
    after update on public.rec_user_experiment_assignments
    referencing old table as old_rows new table as new_rows
    for each statement execute function rec_internal.count_updated_assignments();
  create trigger rec_assignments_count_delete
    after delete on public.rec_user_experiment_assignments
    referencing old table as old_rows
    for each statement execute function rec_internal.count_deleted_assignments();
  create trigger rec_assignments_count_truncate
    after truncate on public.rec_user_experiment_assignments
    for each statement execute function rec_internal.count_truncated_assignments();
  insert into rec_internal.assignment_counts (experiment_id, variant, assignment_mode, shard, users)
  select a.experiment_id, a.variant, a.assignment_mode, 0, count(*)
    from public.rec_user_experiment_assignments a
   group by a.experiment_id, a.variant, a.assignment_mode;
end
$$;

-- [{variant, auto, manual, total}]: every declared variant in array order
-- (zeros included), then any counted variant no longer declared.
create function rec_internal.assignment_counts_json(experiment_id uuid, variants jsonb)
returns jsonb
language sql stable
set search_path = ''
as $$
  with counted as (
    select c.variant,
           sum(c.users) filter (where c.assignment_mode = 'auto') as auto,
           sum(c.users) filter (where c.assignment_mode = 'manual') as manual
      from rec_internal.assignment_counts c
     where c.experiment_id = assignment_counts_json.experiment_id
     group by c.variant
    having sum(c.users) <> 0)
  select coalesce(jsonb_agg(jsonb_build_object(
           'variant', v.name, 'auto', coalesce(k.auto, 0), 'manual', coalesce(k.manual, 0),
           'total', coalesce(k.auto, 0) + coalesce(k.manual, 0)) order by v.ord, v.name), '[]')
    from (select d.value->>'name' as name, d.ord
            from jsonb_array_elements(assignment_counts_json.variants) with ordinality d(value, ord)
          union all
          select k.variant, 1000000
            from counted k
           where not exists (select 1 from jsonb_array_elements(assignment_counts_json.variants) d
                              where d->>'name' = k.variant)) v
    left join counted k on k.variant = v.name
$$;
revoke all on function rec_internal.assignment_counts_json(uuid, jsonb)
  from public, anon, authenticated, service_role;

create or replace function public.rec_get_experiment(experiment_key text)
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  e public.rec_experiments := rec_internal.experiment(experiment_key);
begin
  return to_jsonb(e) || jsonb_build_object('assignment_counts',
                                           rec_internal.assignment_counts_json(e.id, e.variants));
end
$$;
comment on function public.rec_get_experiment(text) is
  'One experiment (with its decision once ended) and its assignment counts per variant and mode.';

-- The list gains search and paging. Old signature dropped (an overload
-- would make named calls ambiguous); status-only calls keep working.
drop function public.rec_list_experiments(text);

alter type public.rec_experiment_summary
  add attribute decision text,
  add attribute winner text,
  add attribute decision_notes text,
  add attribute assignment_counts jsonb,
  add attribute total_rows bigint;

create function public.rec_list_experiments(
  status text default null, search text default null,
  max_rows int default null, offset_rows int default 0)
returns setof public.rec_experiment_summary
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if rec_list_experiments.status is not null
     and rec_list_experiments.status not in ('draft', 'active', 'ended') then
    raise exception 'unknown status %; use draft, active or ended',
      quote_literal(rec_list_experiments.status) using errcode = '22023';
  end if;
  if max_rows is not null and max_rows not between 1 and 1000 then
    raise exception 'max_rows must be between 1 and 1000 (or null for all), got %', max_rows
      using errcode = '22023';
  end if;
  if offset_rows < 0 then
    raise exception 'offset_rows must be 0 or more, got %', offset_rows using errcode = '22023';
  end if;
  return query
    with page as (
      select x.*, count(*) over () as total_rows
        from public.rec_experiments x
       where (rec_list_experiments.status is null or x.status = rec_list_experiments.status)
         and (rec_list_experiments.search is null
              or strpos(lower(x.key), lower(rec_list_experiments.search)) > 0
              or strpos(lower(coalesce(x.name, '')), lower(rec_list_experiments.search)) > 0)
       order by x.created_at desc, x.key
       limit rec_list_experiments.max_rows offset coalesce(rec_list_experiments.offset_rows, 0))
    select p.id, p.key, p.name, p.description, p.status, p.variants, p.salt,
           p.salt_rotation_interval, p.salt_rotated_at, p.created_at, p.updated_at,
           p.started_at, p.ended_at,
           coalesce(k.total, 0)::bigint, coalesce(k.manual, 0)::bigint,
           p.decision, p.winner, p.decision_notes,
           rec_internal.assignment_counts_json(p.id, p.variants), p.total_rows
      from page p
      left join lateral (
        select sum(c.users) as total, sum(c.users) filter (where c.assignment_mode = 'manual') as manual
          from rec_internal.assignment_counts c where c.experiment_id = p.id) k on true
     order by p.created_at desc, p.key;
end
$$;
comment on function public.rec_list_experiments(text, text, int, int) is
  'Experiments, newest first, optionally of one status and matching a search of key or name, '
  'paged; with kept assignment counts and total_rows (the count before paging).';

revoke all on function public.rec_list_experiments(text, text, int, int) from public, anon, authenticated;
grant execute on function public.rec_list_experiments(text, text, int, int) to service_role;
