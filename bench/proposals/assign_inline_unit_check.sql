-- Proposal: inline the unit check in the two recommender RPCs.
--
-- `perform rec_internal.check_unit_access(user_id)` costs a nested plpgsql
-- call per request: an SPI statement, a function call with its own
-- `set search_path` (GUC save/restore) and a second plan-cache check. On the
-- sticky-hit path that is a large share of the function's own work. The same
-- tests as plpgsql IFs ("simple expressions", evaluated without SPI; the
-- AND short-circuits, so auth.uid() is only read for anon/authenticated)
-- behave identically, same SQLSTATEs and messages. Everything else is the
-- functions as they are in 20261126200300_rec_assignment_rpcs.sql.
-- rec_internal.check_unit_access stays for other callers.
--
-- Measured (pgbench -M prepared -c 2, quiet machine, PG 18, throughput
-- relative to the bare PK lookup): current function 0.70, this 0.75-0.76.
-- The ceiling for any function here is the same two-index join run as a
-- plain prepared statement, 0.90: the RPC takes the experiment key, so it
-- must resolve key -> id, a second index probe the baseline does not make.
-- What remains (~0.15) is the plpgsql call itself (security definer,
-- SET search_path, one SPI query). Marking it STABLE (+0.01) and a covering
-- index on rec_experiments (key) include (id, status) (+0.00) do not help.
--
-- Measure: python -m bench assign assign_many --apply bench/proposals/assign_inline_unit_check.sql

create or replace function public.rec_assign_variant(experiment_key text, user_id uuid)
returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  e_id uuid;
  e_status text;
  stored text;
  stored_mode text;
begin
  -- rec_internal.check_unit_access, inlined: no nested plpgsql call on the hot path
  if rec_assign_variant.user_id is null then
    raise exception 'user_id is required' using errcode = '22023';
  end if;
  if current_setting('role') in ('anon', 'authenticated')
     and auth.uid() is distinct from rec_assign_variant.user_id then
    raise exception 'a signed-in user may only be assigned as themselves'
      using errcode = '42501';
  end if;
  select x.id, x.status, a.variant, a.assignment_mode into e_id, e_status, stored, stored_mode
    from public.rec_experiments x
    left join public.rec_user_experiment_assignments a
      on a.experiment_id = x.id and a.user_id = rec_assign_variant.user_id
   where x.key = rec_assign_variant.experiment_key;
  if e_id is null then
    perform rec_internal.experiment(rec_assign_variant.experiment_key);  -- raises P0002
  end if;
  if e_status <> 'active' then
    -- draft/ended: only a manual override (QA preview); nothing is written
    return case when stored_mode = 'manual' then stored end;
  end if;
  if stored is not null then
    return stored;  -- the sticky hit: one indexed join, nothing written
  end if;
  return rec_internal.sticky_variant(rec_internal.experiment(rec_assign_variant.experiment_key),
                                     rec_assign_variant.user_id);
end
$$;

create or replace function public.rec_assign_variants(user_id uuid)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  result jsonb;
  missing bigint;
  e public.rec_experiments;
begin
  -- rec_internal.check_unit_access, inlined: no nested plpgsql call on the hot path
  if rec_assign_variants.user_id is null then
    raise exception 'user_id is required' using errcode = '22023';
  end if;
  if current_setting('role') in ('anon', 'authenticated')
     and auth.uid() is distinct from rec_assign_variants.user_id then
    raise exception 'a signed-in user may only be assigned as themselves'
      using errcode = '42501';
  end if;
  select coalesce(jsonb_object_agg(x.key, a.variant) filter (where a.variant is not null), '{}'),
         count(*) filter (where a.variant is null)
    into result, missing
    from public.rec_experiments x
    left join public.rec_user_experiment_assignments a
      on a.experiment_id = x.id and a.user_id = rec_assign_variants.user_id
   where x.status = 'active';
  if missing = 0 then
    return result;
  end if;
  -- Every experiment missing from the map, even if a concurrent call has
  -- stored its row since (sticky_variant then reads that row). In id order,
  -- so concurrent callers take row locks in the same order.
  for e in
    select x.* from public.rec_experiments x
     where x.status = 'active' and not result ? x.key
     order by x.id
  loop
    result := result || jsonb_build_object(e.key, rec_internal.sticky_variant(e, rec_assign_variants.user_id));
  end loop;
  return result;
end
$$;
