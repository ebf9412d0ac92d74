-- Creating, editing, starting, ending experiments and rotating salts.
-- Each checks its input, changes the row and writes its audit entry in one
-- transaction; a refused action raises before anything is written.

create function rec_internal.check_variants(variants jsonb) returns void
language plpgsql immutable
set search_path = ''
as $$
declare
  problem text := rec_internal.variants_problem(variants);
begin
  if problem is not null then
    raise exception 'invalid variants: %', problem using errcode = '22023',
      hint = 'Example: [{"name": "control", "weight": 50}, {"name": "treatment", "weight": 50}]';
  end if;
end
$$;

-- '0' means "never rotate" (stored as null). Negative, infinite and absurd
-- intervals are refused: past 100 years `rotated_at + interval` can overflow
-- and would break the scheduler's query for every experiment.
create function rec_internal.rotation_interval(salt_rotation_interval interval) returns interval
language plpgsql immutable
set search_path = ''
as $$
begin
  if salt_rotation_interval < interval '0' or not isfinite(salt_rotation_interval)
     or salt_rotation_interval > interval '100 years' then
    raise exception 'salt_rotation_interval must be between 0 (never) and 100 years, got %',
      salt_rotation_interval using errcode = '22023';
  end if;
  return nullif(salt_rotation_interval, interval '0');
end
$$;

create function public.rec_create_experiment(
  experiment_key text, variants jsonb, admin_id uuid,
  name text default null, description text default null, salt text default null,
  salt_rotation_interval interval default null)
returns public.rec_experiments
language plpgsql security definer
set search_path = ''
as $$
declare
  e public.rec_experiments;
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
  begin
    insert into public.rec_experiments (key, name, description, variants, salt, salt_rotation_interval)
    values (experiment_key, name, description, variants, coalesce(salt, rec_internal.new_salt()),
            rec_internal.rotation_interval(salt_rotation_interval))
    returning * into e;
  exception when unique_violation then
    raise exception 'experiment % already exists', quote_literal(experiment_key)
      using errcode = '23505', hint = 'Pick another key or edit it with rec_update_experiment().';
  end;
  perform rec_internal.audit(e.id, 'create_experiment', admin_id,
                             jsonb_build_object('experiment_key', e.key, 'after', to_jsonb(e)));
  return e;
end
$$;
comment on function public.rec_create_experiment(text, jsonb, uuid, text, text, text, interval) is
  'Create a draft experiment (random salt unless one is given), audited.';

create function public.rec_update_experiment(
  experiment_key text, admin_id uuid,
  name text default null, description text default null, variants jsonb default null,
  salt_rotation_interval interval default null)
returns public.rec_experiments
language plpgsql security definer
set search_path = ''
as $$
declare
  old public.rec_experiments;
  e public.rec_experiments;
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
  update public.rec_experiments x
     set name = coalesce(rec_update_experiment.name, x.name),
         description = coalesce(rec_update_experiment.description, x.description),
         variants = coalesce(rec_update_experiment.variants, x.variants),
         salt_rotation_interval = case when rec_update_experiment.salt_rotation_interval is null
                                       then x.salt_rotation_interval
                                       else rec_internal.rotation_interval(rec_update_experiment.salt_rotation_interval) end
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
  -- Only the fields that changed, before and after.
  select jsonb_object_agg(n.key, jsonb_build_object('before', o.value, 'after', n.value))
    into changed
    from jsonb_each(to_jsonb(e)) n join jsonb_each(to_jsonb(old)) o using (key)
   where n.value is distinct from o.value and n.key <> 'updated_at';
  perform rec_internal.audit(e.id, 'update_experiment', admin_id,
    jsonb_build_object('experiment_key', e.key, 'changes', coalesce(changed, '{}'))
    || case when removed is null then '{}' else jsonb_build_object('removed_overrides', removed) end);
  return e;
end
$$;
comment on function public.rec_update_experiment(text, uuid, text, text, jsonb, interval) is
  'Edit name/description/rotation interval (null = unchanged); variants only while draft.';

-- Shared by activate and end: one allowed transition, else 55000.
create function rec_internal.transition(experiment_key text, admin_id uuid, from_status text, to_status text)
returns public.rec_experiments
language plpgsql volatile
set search_path = ''
as $$
declare
  e public.rec_experiments;
begin
  perform rec_internal.require_admin_id(admin_id);
  e := rec_internal.experiment(experiment_key, for_update => true);
  if e.status <> from_status then
    raise exception 'experiment % is %; only % experiments can become %',
      quote_literal(e.key), e.status, from_status, to_status
      using errcode = '55000';
  end if;
  update public.rec_experiments x
     set status = to_status,
         started_at = case when to_status = 'active' then now() else x.started_at end,
         ended_at = case when to_status = 'ended' then now() else x.ended_at end
   where x.id = e.id
  returning * into e;
  perform rec_internal.audit(e.id, case to_status when 'active' then 'activate_experiment'
                                                  else 'end_experiment' end,
                             admin_id, jsonb_build_object('experiment_key', e.key,
                               'before', jsonb_build_object('status', from_status),
                               'after', jsonb_build_object('status', to_status)));
  return e;
end
$$;

create function public.rec_activate_experiment(experiment_key text, admin_id uuid)
returns public.rec_experiments
language sql security definer
set search_path = ''
as $$
  select * from rec_internal.transition(experiment_key, admin_id, 'draft', 'active')
$$;
comment on function public.rec_activate_experiment(text, uuid) is 'draft -> active; starts assigning.';

create function public.rec_end_experiment(experiment_key text, admin_id uuid)
returns public.rec_experiments
language sql security definer
set search_path = ''
as $$
  select * from rec_internal.transition(experiment_key, admin_id, 'active', 'ended')
$$;
comment on function public.rec_end_experiment(text, uuid) is 'active -> ended; stops assigning.';

-- New salt; stored users keep their variant unless `reassign`, which drops
-- the auto rows so users are re-bucketed. Manual rows always survive. The
-- audit row keeps the old salt so past assignments stay reproducible.
create function rec_internal.rotate(e public.rec_experiments, admin_id uuid, reassign boolean, scheduled boolean)
returns text
language plpgsql volatile
set search_path = ''
as $$
declare
  new_salt text := rec_internal.new_salt();
  dropped bigint := 0;
begin
  if e.status = 'ended' then
    raise exception 'experiment % has ended; its salt is frozen', quote_literal(e.key)
      using errcode = '55000';
  end if;
  update public.rec_experiments x set salt = new_salt, salt_rotated_at = now() where x.id = e.id;
  if coalesce(reassign, false) then
    delete from public.rec_user_experiment_assignments a
     where a.experiment_id = e.id and a.assignment_mode = 'auto';
    get diagnostics dropped = row_count;
  end if;
  perform rec_internal.audit(e.id, 'rotate_salt', admin_id, jsonb_build_object(
    'experiment_key', e.key, 'scheduled', scheduled, 'reassign', coalesce(reassign, false),
    'auto_assignments_removed', dropped,
    'before', jsonb_build_object('salt', e.salt, 'salt_rotated_at', e.salt_rotated_at),
    'after', jsonb_build_object('salt', new_salt)));
  return new_salt;
end
$$;

create function public.rec_rotate_salt(experiment_key text, admin_id uuid, reassign boolean default false)
returns text
language plpgsql security definer
set search_path = ''
as $$
begin
  perform rec_internal.require_admin_id(admin_id);
  return rec_internal.rotate(rec_internal.experiment(experiment_key, for_update => true),
                             admin_id, reassign, false);
end
$$;
comment on function public.rec_rotate_salt(text, uuid, boolean) is
  'Rotate one experiment''s salt now (reassign => true re-buckets automatic assignments).';

-- For the scheduler. SKIP LOCKED: two overlapping runs never rotate one
-- experiment twice, and never wait on an admin editing it (it is rotated
-- on the next run).
create function public.rec_rotate_due_salts(reassign boolean default false, admin_id uuid default null)
returns setof text
language plpgsql security definer
set search_path = ''
as $$
declare
  e public.rec_experiments;
begin
  for e in
    select * from public.rec_experiments x
     where x.status <> 'ended'
       and x.salt_rotation_interval is not null
       and coalesce(x.salt_rotated_at, x.created_at) + x.salt_rotation_interval <= now()
     order by x.key
     for no key update skip locked
  loop
    perform rec_internal.rotate(e, admin_id, reassign, true);
    return next e.key;
  end loop;
end
$$;
comment on function public.rec_rotate_due_salts(boolean, uuid) is
  'Rotate every non-ended experiment whose salt_rotation_interval has elapsed; returns their keys.';
