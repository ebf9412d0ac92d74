-- The recommender's hot path and the admin overrides (docs/reference.md §3).

-- One experiment's variant for one user. Sticky hit = one indexed join.
create function public.rec_assign_variant(experiment_key text, user_id uuid)
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
  -- Inline, not a helper call: this is the hot path (see bench/).
  if rec_assign_variant.user_id is null then
    raise exception 'user_id is required' using errcode = '22023';
  end if;
  -- A signed-in user may be assigned only as themselves. `role` is what
  -- PostgREST switched to (SET LOCAL ROLE); 'none' in direct sessions.
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
comment on function public.rec_assign_variant(text, uuid) is
  'Sticky variant of one active experiment for a user (assigns by the hash rule on first call).';

-- The {experiment_key: variant} map over all active experiments: exactly
-- what the recommender stores in request_context.experiments.
create function public.rec_assign_variants(user_id uuid)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  result jsonb;
  missing bigint;
  e public.rec_experiments;
begin
  -- Inline, not a helper call: this is the hot path (see bench/).
  if rec_assign_variants.user_id is null then
    raise exception 'user_id is required' using errcode = '22023';
  end if;
  -- A signed-in user may be assigned only as themselves. `role` is what
  -- PostgREST switched to (SET LOCAL ROLE); 'none' in direct sessions.
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
comment on function public.rec_assign_variants(uuid) is
  'All active experiments'' variants for a user, as the map to tag impressions with.';

create function public.rec_set_user_variant(experiment_key text, user_id uuid, variant text, admin_id uuid)
returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  e public.rec_experiments;
  before jsonb;
begin
  perform rec_internal.require_admin_id(admin_id);
  e := rec_internal.experiment(experiment_key);
  if user_id is null then
    raise exception 'user_id is required' using errcode = '22023';
  end if;
  if not exists (select 1 from jsonb_array_elements(e.variants) v
                  where v->>'name' = rec_set_user_variant.variant) then
    raise exception 'experiment % has no variant %', quote_literal(e.key),
      coalesce(quote_literal(variant), 'null')
      using errcode = '22023',
            hint = format('Variants are: %s.',
                          (select string_agg(v->>'name', ', ') from jsonb_array_elements(e.variants) v));
  end if;
  select jsonb_build_object('variant', a.variant, 'assignment_mode', a.assignment_mode,
                            'assigned_by', a.assigned_by)
    into before
    from public.rec_user_experiment_assignments a
   where a.experiment_id = e.id and a.user_id = rec_set_user_variant.user_id
     for update;
  insert into public.rec_user_experiment_assignments
         (experiment_id, user_id, variant, assignment_mode, assigned_by, assigned_at)
  values (e.id, rec_set_user_variant.user_id, rec_set_user_variant.variant, 'manual', admin_id, now())
  on conflict on constraint rec_user_experiment_assignments_pkey do update
     set variant = excluded.variant, assignment_mode = 'manual',
         assigned_by = excluded.assigned_by, assigned_at = excluded.assigned_at;
  perform rec_internal.audit(e.id, 'set_user_variant', admin_id, jsonb_build_object(
    'experiment_key', e.key, 'user_id', user_id, 'before', before,
    'after', jsonb_build_object('variant', variant, 'assignment_mode', 'manual', 'assigned_by', admin_id)));
  return variant;
end
$$;
comment on function public.rec_set_user_variant(text, uuid, text, uuid) is
  'Admin override: pin a user to a variant (manual assignment), audited.';

create function public.rec_reset_user_variant(experiment_key text, user_id uuid, admin_id uuid)
returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  e public.rec_experiments;
  removed public.rec_user_experiment_assignments;
  now_variant text;
begin
  perform rec_internal.require_admin_id(admin_id);
  e := rec_internal.experiment(experiment_key);
  if user_id is null then
    raise exception 'user_id is required' using errcode = '22023';
  end if;
  delete from public.rec_user_experiment_assignments a
   where a.experiment_id = e.id and a.user_id = rec_reset_user_variant.user_id
     and a.assignment_mode = 'manual'
  returning a.* into removed;
  if e.status = 'active' then
    now_variant := rec_internal.sticky_variant(e, rec_reset_user_variant.user_id);
  end if;
  perform rec_internal.audit(e.id, 'reset_user_variant', admin_id, jsonb_build_object(
    'experiment_key', e.key, 'user_id', user_id,
    'before', case when removed.user_id is not null then jsonb_build_object(
      'variant', removed.variant, 'assignment_mode', 'manual', 'assigned_by', removed.assigned_by) end,
    'after', case when now_variant is not null then jsonb_build_object(
      'variant', now_variant, 'assignment_mode', 'auto') end));
  return now_variant;
end
$$;
comment on function public.rec_reset_user_variant(text, uuid, uuid) is
  'Remove a manual override; the user falls back to the hash rule (active) or nothing.';

create function public.rec_active_experiments()
returns table (id uuid, key text, name text, description text, variants jsonb,
               started_at timestamptz)
language sql stable security definer
set search_path = ''
as $$
  select x.id, x.key, x.name, x.description, x.variants, x.started_at
    from public.rec_experiments x
   where x.status = 'active'
   order by x.key
$$;
comment on function public.rec_active_experiments() is 'Experiments currently serving traffic.';
