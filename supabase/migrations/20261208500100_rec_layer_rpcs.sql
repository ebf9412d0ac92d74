-- Layers, coverage and the experiment settings through the RPCs:
-- rec_create_layer, rec_list_layers; rec_create_experiment and
-- rec_update_experiment with their new arguments (old calls keep working);
-- rec_get_experiment, rec_user_assignments and rec_assign_variants on the
-- extended rule.

-- --------------------------------------------------------------------------
-- Argument checks shared by create and update (22023, nothing written).

create function rec_internal.check_coverage(coverage double precision) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if coverage is not null and not (coverage >= 0 and coverage <= 1) then  -- NaN fails too
    raise exception 'coverage must be between 0 and 1, got %', coverage
      using errcode = '22023', hint = 'Coverage is the share of eligible users who enter: 0.01 is 1 %.';
  end if;
end
$$;

create function rec_internal.check_settings(sequential_tuning int, cuped_days int) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if sequential_tuning is not null and sequential_tuning not between 100 and 10000000 then
    raise exception 'sequential_tuning must be between 100 and 10000000, got %', sequential_tuning
      using errcode = '22023', hint = 'It is the number of users per variant the sequential test is tuned for.';
  end if;
  if cuped_days is not null and cuped_days not between 0 and 60 then
    raise exception 'cuped_days must be between 0 (off) and 60, got %', cuped_days
      using errcode = '22023';
  end if;
end
$$;

-- The range [layer_from, layer_to): both or neither (neither: the whole layer).
create function rec_internal.layer_range(layer_from int, layer_to int) returns int4range
language plpgsql immutable
set search_path = ''
as $$
begin
  if (layer_from is null) <> (layer_to is null) then
    raise exception 'give both layer_from and layer_to, or neither (the whole layer)'
      using errcode = '22023';
  end if;
  if layer_from is null then
    return int4range(0, 10000);
  end if;
  if layer_from < 0 or layer_to > 10000 or layer_from >= layer_to then
    raise exception 'layer range [%, %) must satisfy 0 <= layer_from < layer_to <= 10000',
      layer_from, layer_to using errcode = '22023';
  end if;
  return int4range(layer_from, layer_to);
end
$$;

create function rec_internal.layer_id(layer_key text) returns uuid
language plpgsql stable
set search_path = ''
as $$
declare
  found_id uuid;
begin
  select l.id into found_id from public.rec_layers l where l.key = layer_id.layer_key;
  if found_id is null then
    raise exception 'layer % does not exist', coalesce(quote_literal(layer_key), 'null')
      using errcode = 'P0002', hint = 'Check the key with rec_list_layers(), or create it with rec_create_layer().';
  end if;
  return found_id;
end
$$;

-- An overlap refused by the exclusion constraint, said with the experiment
-- that holds the range. Called from the handler, so the holder (committed
-- by then: the constraint waited for it) is visible.
create function rec_internal.raise_overlap(experiment_id uuid, layer_id uuid, wanted int4range)
returns void
language plpgsql stable
set search_path = ''
as $$
declare
  holder public.rec_experiments;
  layer_key text := (select l.key from public.rec_layers l where l.id = raise_overlap.layer_id);
begin
  select * into holder from public.rec_experiments x
   where x.layer_id = raise_overlap.layer_id and x.layer_range && wanted and x.status <> 'ended'
     and x.id is distinct from raise_overlap.experiment_id
   order by lower(x.layer_range) limit 1;
  raise exception 'range [%, %) of layer % overlaps experiment % (%, holds [%, %))',
    lower(wanted), upper(wanted), quote_literal(layer_key), quote_literal(coalesce(holder.key, '?')),
    coalesce(holder.status, '?'), lower(holder.layer_range), upper(holder.layer_range)
    using errcode = '23P01',
          hint = 'Pick a free range (rec_list_layers() lists them), or end or move the experiment that holds it.';
end
$$;

-- --------------------------------------------------------------------------
-- Layers

create function public.rec_create_layer(layer_key text, admin_id uuid, name text default null,
                                        description text default null)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  l public.rec_layers;
begin
  perform rec_internal.require_admin_id(admin_id);
  if layer_key is null or layer_key !~ '^[a-z0-9][a-z0-9_.-]{0,63}$' then
    raise exception 'invalid layer key %', coalesce(quote_literal(layer_key), 'null')
      using errcode = '22023',
            hint = 'Keys are 1-64 characters of a-z, 0-9, "_", "." and "-", starting with a letter or digit.';
  end if;
  begin
    insert into public.rec_layers (key, name, description)
    values (layer_key, name, description)
    returning * into l;
  exception when unique_violation then
    raise exception 'layer % already exists', quote_literal(layer_key)
      using errcode = '23505', hint = 'Pick another key; rec_list_layers() lists the layers.';
  end;
  perform rec_internal.audit(null, 'create_layer', admin_id,
                             jsonb_build_object('layer_key', l.key, 'after', to_jsonb(l)));
  return to_jsonb(l);
end
$$;
comment on function public.rec_create_layer(text, uuid, text, text) is
  'Create a layer (random salt that never changes): experiments in it take disjoint ranges of 10,000 buckets.';

create function public.rec_list_layers()
returns table (key text, name text, description text, salt text, created_at timestamptz,
               experiments jsonb, free jsonb)
language sql stable security definer
set search_path = ''
as $$
  select l.key, l.name, l.description, l.salt, l.created_at,
         coalesce((select jsonb_agg(jsonb_build_object(
                            'key', x.key, 'status', x.status,
                            'layer_range', jsonb_build_array(lower(x.layer_range), upper(x.layer_range)))
                          order by lower(x.layer_range), x.key)
                     from public.rec_experiments x where x.layer_id = l.id), '[]'),
         -- what no experiment that has not ended holds
         coalesce((select jsonb_agg(jsonb_build_array(lower(f), upper(f)) order by lower(f))
                     from unnest(int4multirange(int4range(0, 10000))
                                 - coalesce((select range_agg(x.layer_range) from public.rec_experiments x
                                              where x.layer_id = l.id and x.status <> 'ended'),
                                            '{}'::int4multirange)) f), '[]')
    from public.rec_layers l
   order by l.key
$$;
comment on function public.rec_list_layers() is
  'Layers with their salt, their experiments'' ranges and the ranges still free.';

-- --------------------------------------------------------------------------
-- Create and update experiments: same arguments as before plus coverage,
-- the layer and range, and the three analysis settings (all defaulted, so
-- calls with only the old arguments work as before). One signature each:
-- a second overload would make every named call ambiguous.

drop function public.rec_create_experiment(text, jsonb, uuid, text, text, text, interval);
drop function public.rec_update_experiment(text, uuid, text, text, jsonb, interval);

create function public.rec_create_experiment(
  experiment_key text, variants jsonb, admin_id uuid,
  name text default null, description text default null, salt text default null,
  salt_rotation_interval interval default null,
  coverage double precision default null, layer_key text default null,
  layer_from int default null, layer_to int default null,
  sequential boolean default null, sequential_tuning int default null, cuped_days int default null)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  e public.rec_experiments;
  new_layer uuid;
  new_range int4range;
begin
  perform rec_internal.require_admin_id(admin_id);
  if experiment_key is null or experiment_key !~ '^[a-z0-9][a-z0-9_.-]{0,63}$' then
    raise exception 'invalid experiment key %', coalesce(quote_literal(experiment_key), 'null')
      using errcode = '22023',
            hint = 'Keys are 1-64 characters of a-z, 0-9, "_", "." and "-", starting with a letter or digit.';
  end if;
  perform rec_internal.check_variants(variants);
  if salt is not null and length(salt) not between 1 and 256 then
    raise exception 'salt must be 1 to 256 characters' using errcode = '22023';
  end if;
  perform rec_internal.check_coverage(coverage);
  perform rec_internal.check_settings(sequential_tuning, cuped_days);
  if coalesce(layer_key, '') = '' then
    if layer_from is not null or layer_to is not null then
      raise exception 'layer_from and layer_to need a layer_key' using errcode = '22023';
    end if;
  else
    new_range := rec_internal.layer_range(layer_from, layer_to);
    new_layer := rec_internal.layer_id(layer_key);
  end if;
  begin
    insert into public.rec_experiments (key, name, description, variants, salt, salt_rotation_interval,
                                        coverage, layer_id, layer_range)
    values (experiment_key, name, description, variants, coalesce(salt, rec_internal.new_salt()),
            rec_internal.rotation_interval(salt_rotation_interval), coalesce(coverage, 1),
            new_layer, new_range)
    returning * into e;
  exception
    when unique_violation then
      raise exception 'experiment % already exists', quote_literal(experiment_key)
        using errcode = '23505', hint = 'Pick another key or edit it with rec_update_experiment().';
    when exclusion_violation then
      perform rec_internal.raise_overlap(null, new_layer, new_range);
  end;
  -- null = the column defaults of a new experiment
  if sequential is not null or sequential_tuning is not null or cuped_days is not null then
    update public.rec_experiments x
       set sequential = coalesce(rec_create_experiment.sequential, x.sequential),
           sequential_tuning = coalesce(rec_create_experiment.sequential_tuning, x.sequential_tuning),
           cuped_days = coalesce(rec_create_experiment.cuped_days, x.cuped_days)
     where x.id = e.id
    returning * into e;
  end if;
  perform rec_internal.audit(e.id, 'create_experiment', admin_id,
                             jsonb_build_object('experiment_key', e.key, 'after', rec_internal.experiment_json(e)));
  return rec_internal.experiment_json(e);
end
$$;
comment on function public.rec_create_experiment(text, jsonb, uuid, text, text, text, interval,
                                                 double precision, text, int, int, boolean, int, int) is
  'Create a draft experiment (random salt unless one is given; coverage, layer range and analysis settings optional), audited.';

create function public.rec_update_experiment(
  experiment_key text, admin_id uuid,
  name text default null, description text default null, variants jsonb default null,
  salt_rotation_interval interval default null,
  coverage double precision default null, layer_key text default null,
  layer_from int default null, layer_to int default null,
  sequential boolean default null, sequential_tuning int default null, cuped_days int default null)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  old public.rec_experiments;
  e public.rec_experiments;
  new_layer uuid;
  new_range int4range;
  changed jsonb;
  removed jsonb;
begin
  perform rec_internal.require_admin_id(admin_id);
  old := rec_internal.experiment(experiment_key, for_update => true);
  if variants is not null then
    if old.status <> 'draft' then
      raise exception 'variants of experiment % cannot change: it is %', quote_literal(old.key), old.status
        using errcode = '55000',
              hint = 'Variants are editable only while draft; create a new experiment instead.';
    end if;
    perform rec_internal.check_variants(variants);
  end if;
  if layer_key is not null or layer_from is not null or layer_to is not null then
    if old.status <> 'draft' then
      raise exception 'the layer of experiment % cannot change: it is %', quote_literal(old.key), old.status
        using errcode = '55000',
              hint = 'Layer and range are editable only while draft: moving users between layers would break exclusivity.';
    end if;
    if layer_key = '' then  -- leave the layer
      if layer_from is not null or layer_to is not null then
        raise exception 'layer_from and layer_to cannot go with layer_key '''' (leaving the layer)'
          using errcode = '22023';
      end if;
    elsif layer_key is null and old.layer_id is null then
      raise exception 'experiment % is in no layer: give layer_key with layer_from and layer_to',
        quote_literal(old.key) using errcode = '22023';
    else
      new_range := rec_internal.layer_range(layer_from, layer_to);
      new_layer := case when layer_key is null then old.layer_id else rec_internal.layer_id(layer_key) end;
    end if;
  end if;
  if (coverage is not null or sequential is not null or sequential_tuning is not null or cuped_days is not null)
     and old.status = 'ended' then
    raise exception 'experiment % has ended; its coverage and settings are final', quote_literal(old.key)
      using errcode = '55000';
  end if;
  perform rec_internal.check_coverage(coverage);
  perform rec_internal.check_settings(sequential_tuning, cuped_days);
  -- The layer first, in a subtransaction only when it changes (so an
  -- overlap can be reported with its holder); the rest in the main one.
  if layer_key = '' or new_range is not null then
    begin
      update public.rec_experiments x
         set layer_id = new_layer, layer_range = new_range
       where x.id = old.id;
    exception when exclusion_violation then
      perform rec_internal.raise_overlap(old.id, new_layer, new_range);
    end;
  end if;
  update public.rec_experiments x
     set name = coalesce(rec_update_experiment.name, x.name),
         description = coalesce(rec_update_experiment.description, x.description),
         variants = coalesce(rec_update_experiment.variants, x.variants),
         salt_rotation_interval = case when rec_update_experiment.salt_rotation_interval is null
                                       then x.salt_rotation_interval
                                       else rec_internal.rotation_interval(rec_update_experiment.salt_rotation_interval) end,
         coverage = coalesce(rec_update_experiment.coverage, x.coverage),
         sequential = coalesce(rec_update_experiment.sequential, x.sequential),
         sequential_tuning = coalesce(rec_update_experiment.sequential_tuning, x.sequential_tuning),
         cuped_days = coalesce(rec_update_experiment.cuped_days, x.cuped_days)
   where x.id = old.id
  returning * into e;
  -- A draft has only QA overrides; those pinned to a variant that no longer
  -- exists go (and are listed in the audit row), so none can serve it.
  with gone as (
    delete from public.rec_user_experiment_assignments a
     where a.experiment_id = e.id
       and not exists (select 1 from jsonb_array_elements(e.variants) v where v->>'name' = a.variant)
    returning a.user_id, a.variant, a.assigned_by)
  select jsonb_agg(to_jsonb(gone)) into removed from gone;
  -- Only the fields that changed, before and after (a coverage ramp included).
  select jsonb_object_agg(n.key, jsonb_build_object('before', o.value, 'after', n.value))
    into changed
    from jsonb_each(rec_internal.experiment_json(e)) n
    join jsonb_each(rec_internal.experiment_json(old)) o using (key)
   where n.value is distinct from o.value and n.key <> 'updated_at';
  perform rec_internal.audit(e.id, 'update_experiment', admin_id,
    jsonb_build_object('experiment_key', e.key, 'changes', coalesce(changed, '{}'))
    || case when removed is null then '{}' else jsonb_build_object('removed_overrides', removed) end);
  return rec_internal.experiment_json(e);
end
$$;
comment on function public.rec_update_experiment(text, uuid, text, text, jsonb, interval,
                                                 double precision, text, int, int, boolean, int, int) is
  'Edit an experiment (null = unchanged): variants and layer only while draft; coverage and settings until it ends.';

-- --------------------------------------------------------------------------
-- Reads and the hot path on the extended rule.

create or replace function public.rec_get_experiment(experiment_key text)
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  e public.rec_experiments := rec_internal.experiment(experiment_key);
begin
  -- One entry per declared variant (zeros included), then any stored
  -- variant no longer declared (cannot happen after draft, but be honest).
  return rec_internal.experiment_json(e) || jsonb_build_object('assignment_counts', (
    select coalesce(jsonb_agg(jsonb_build_object(
             'variant', v.name, 'auto', coalesce(c.auto, 0), 'manual', coalesce(c.manual, 0),
             'total', coalesce(c.auto, 0) + coalesce(c.manual, 0)) order by v.ord), '[]')
      from (select d.value->>'name' as name, d.ord
              from jsonb_array_elements(e.variants) with ordinality d(value, ord)
            union all
            select distinct a.variant, 1000000
              from public.rec_user_experiment_assignments a
             where a.experiment_id = e.id
               and not exists (select 1 from jsonb_array_elements(e.variants) d
                                where d->>'name' = a.variant)) v
      left join (select a.variant,
                        count(*) filter (where a.assignment_mode = 'auto') as auto,
                        count(*) filter (where a.assignment_mode = 'manual') as manual
                   from public.rec_user_experiment_assignments a
                  where a.experiment_id = e.id group by a.variant) c on c.variant = v.name));
end
$$;
comment on function public.rec_get_experiment(text) is
  'One experiment (coverage, layer and range, settings) with assignment counts per variant and mode.';

create or replace function public.rec_user_assignments(user_id uuid)
returns table (experiment_id uuid, key text, name text, status text,
               variant text, assignment_mode text, assigned_by uuid, assigned_at timestamptz,
               rule_variant text)
language sql stable security definer
set search_path = ''
as $$
  select x.id, x.key, x.name, x.status, a.variant, a.assignment_mode, a.assigned_by,
         a.assigned_at, rec_internal.rule_for(x, a.user_id)
    from public.rec_user_experiment_assignments a
    join public.rec_experiments x on x.id = a.experiment_id
   where a.user_id = rec_user_assignments.user_id
   order by x.key
$$;
comment on function public.rec_user_assignments(uuid) is
  'Every experiment a user has a stored assignment in, with what the rule would give today (null: not eligible or not covered).';

-- As before, except that an experiment whose rule leaves the user out
-- (layer range, coverage) is not in the map and nothing is stored for it.
-- The rule runs once per call for every active experiment with no stored
-- row, so a user left out of some costs no query per experiment.
create or replace function public.rec_assign_variants(user_id uuid)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  result jsonb;
  ids uuid[];
  keys text[];
  salts text[];
  variants jsonb[];
  coverages double precision[];
  layer_salts text[];
  layer_ranges int4range[];
  rules text[];
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
  -- Stored variants, and what the rule needs for the experiments without
  -- one (in id order, so concurrent callers take row locks in one order).
  select coalesce(jsonb_object_agg(x.key, a.variant) filter (where a.variant is not null), '{}'),
         array_agg(x.id order by x.id) filter (where a.variant is null),
         array_agg(x.key order by x.id) filter (where a.variant is null),
         array_agg(x.salt order by x.id) filter (where a.variant is null),
         array_agg(x.variants order by x.id) filter (where a.variant is null),
         array_agg(x.coverage order by x.id) filter (where a.variant is null),
         array_agg(l.salt order by x.id) filter (where a.variant is null),
         array_agg(x.layer_range order by x.id) filter (where a.variant is null)
    into result, ids, keys, salts, variants, coverages, layer_salts, layer_ranges
    from public.rec_experiments x
    left join public.rec_user_experiment_assignments a
      on a.experiment_id = x.id and a.user_id = rec_assign_variants.user_id
    left join public.rec_layers l on l.id = x.layer_id
   where x.status = 'active';
  if ids is null then
    return result;  -- the sticky hit: one query, nothing written
  end if;
  rules := rec_internal.rule_variants(rec_assign_variants.user_id, salts, variants, coverages,
                                      layer_salts, layer_ranges);
  for i in 1 .. cardinality(ids) loop
    -- Stored even if a concurrent call stored it since (store_auto then reads that row).
    if rules[i] is not null then
      result := result || jsonb_build_object(keys[i],
                                             rec_internal.store_auto(ids[i], rec_assign_variants.user_id, rules[i]));
    end if;
  end loop;
  return result;
end
$$;

-- --------------------------------------------------------------------------
-- Grants: revoke everything from the API roles, then grant what is meant.

revoke all on function
  rec_internal.check_coverage(double precision),
  rec_internal.check_settings(int, int),
  rec_internal.layer_range(int, int),
  rec_internal.layer_id(text),
  rec_internal.raise_overlap(uuid, uuid, int4range)
  from public, anon, authenticated, service_role;

revoke all on function
  public.rec_create_layer(text, uuid, text, text),
  public.rec_list_layers(),
  public.rec_create_experiment(text, jsonb, uuid, text, text, text, interval,
                               double precision, text, int, int, boolean, int, int),
  public.rec_update_experiment(text, uuid, text, text, jsonb, interval,
                               double precision, text, int, int, boolean, int, int)
  from public, anon, authenticated;
grant execute on function
  public.rec_create_layer(text, uuid, text, text),
  public.rec_list_layers(),
  public.rec_create_experiment(text, jsonb, uuid, text, text, text, interval,
                               double precision, text, int, int, boolean, int, int),
  public.rec_update_experiment(text, uuid, text, text, jsonb, interval,
                               double precision, text, int, int, boolean, int, int)
  to service_role;
