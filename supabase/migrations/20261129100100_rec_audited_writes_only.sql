-- Nothing changes without an audit row. No API role (not even service_role)
-- updates, deletes or truncates rec_audit_log, or writes rec_experiments or
-- rec_user_experiment_assignments directly: state changes go through the
-- audited security definer RPCs, which run as the owner. service_role keeps
-- inserting rec_impressions and rec_outcomes (the recommender logs them).
--
-- Revoked, and refused by triggers as well, so a later grant (or the legacy
-- regime's default grants on a re-created table) cannot reopen the tables.
-- The owner is not an API role: the RPCs, and the owner's own SQL, pass.

create function rec_internal.refuse_api_write() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if current_user in ('anon', 'authenticated', 'service_role') then
    raise exception '% on %.% is not allowed for %: %',
      tg_op, tg_table_schema, tg_table_name, current_user, tg_argv[0]
      using errcode = '42501', hint = tg_argv[1];
  end if;
  if tg_op = 'DELETE' then
    return old;
  end if;
  return new;
end
$$;
revoke all on function rec_internal.refuse_api_write() from public, anon, authenticated, service_role;

-- rec_audit_log: append-only. Row triggers as well as statement triggers,
-- so the refusal holds however the statement reaches the rows.
create trigger rec_audit_log_append_only_rows
  before update or delete on public.rec_audit_log
  for each row execute function rec_internal.refuse_api_write(
    'the audit log is append-only',
    'Audit rows are written by the rec_* admin functions and never changed.');
create trigger rec_audit_log_append_only
  before update or delete or truncate on public.rec_audit_log
  for each statement execute function rec_internal.refuse_api_write(
    'the audit log is append-only',
    'Audit rows are written by the rec_* admin functions and never changed.');

create trigger rec_experiments_audited_writes_only
  before insert or update or delete or truncate on public.rec_experiments
  for each statement execute function rec_internal.refuse_api_write(
    'experiments change only through the audited rec_* functions',
    'Use rec_create_experiment, rec_update_experiment, rec_activate_experiment, rec_end_experiment or rec_rotate_salt.');
create trigger rec_assignments_audited_writes_only
  before insert or update or delete or truncate on public.rec_user_experiment_assignments
  for each statement execute function rec_internal.refuse_api_write(
    'assignments change only through the rec_* functions',
    'Use rec_assign_variant(s), or rec_set_user_variant / rec_reset_user_variant (audited) for overrides.');

-- Grants: service_role reads these tables and inserts audit rows, nothing more.
revoke insert, update, delete, truncate, references, trigger
  on public.rec_experiments, public.rec_user_experiment_assignments
  from public, anon, authenticated, service_role;
revoke update, delete, truncate, references, trigger on public.rec_audit_log
  from public, anon, authenticated, service_role;
-- Direct experiment writes were what evaluated these for service_role.
revoke execute on function rec_internal.variants_problem(jsonb), rec_internal.new_salt(),
                           rec_internal.touch_updated_at()
  from service_role;
