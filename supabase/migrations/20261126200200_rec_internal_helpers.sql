-- Helpers the RPCs share: experiment lookup with a clear P0002, the audit
-- writer, and the insert-or-read of a sticky automatic assignment.

-- The experiment row, locked when the caller is about to change it. NO KEY
-- UPDATE serialises admin actions without blocking first-time assignments
-- (their foreign-key check takes KEY SHARE on this row).
create function rec_internal.experiment(experiment_key text, for_update boolean default false)
returns public.rec_experiments
language plpgsql volatile
set search_path = ''
as $$
declare
  e public.rec_experiments;
begin
  if for_update then
    select * into e from public.rec_experiments x where x.key = experiment.experiment_key for no key update;
  else
    select * into e from public.rec_experiments x where x.key = experiment.experiment_key;
  end if;
  if not found then
    raise exception 'experiment % does not exist', coalesce(quote_literal(experiment_key), 'null')
      using errcode = 'P0002', hint = 'Check the key with rec_list_experiments().';
  end if;
  return e;
end
$$;

create function rec_internal.require_admin_id(admin_id uuid) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if admin_id is null then
    raise exception 'admin_id is required: every admin action is audited with its actor'
      using errcode = '22023';
  end if;
end
$$;

create function rec_internal.audit(experiment_id uuid, action text, actor_id uuid, details jsonb)
returns void
language sql volatile
set search_path = ''
as $$
  insert into public.rec_audit_log (experiment_id, action, actor_id, details)
  values (audit.experiment_id, audit.action, audit.actor_id, coalesce(audit.details, '{}'));
$$;

-- The stored variant of an active experiment, or the §2 rule's variant
-- stored as `auto`. Never overwrites a row: concurrent first calls insert
-- at most one row (ON CONFLICT DO NOTHING waits for the other inserter)
-- and then all read that same row.
create function rec_internal.sticky_variant(e public.rec_experiments, user_id uuid)
returns text
language plpgsql volatile
set search_path = ''
as $$
declare
  v text;
begin
  insert into public.rec_user_experiment_assignments (experiment_id, user_id, variant, assignment_mode)
  values (e.id, sticky_variant.user_id, rec_internal.bucket(e.salt, sticky_variant.user_id, e.variants), 'auto')
  on conflict on constraint rec_user_experiment_assignments_pkey do nothing
  returning variant into v;
  if v is null then
    select a.variant into v from public.rec_user_experiment_assignments a
     where a.experiment_id = e.id and a.user_id = sticky_variant.user_id;
  end if;
  return v;
end
$$;
