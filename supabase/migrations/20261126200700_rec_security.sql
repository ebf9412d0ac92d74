-- Who may do what (docs/reference.md §5), correct under both privilege regimes:
-- legacy Supabase granted every new public object to anon/authenticated
-- by default, today nothing is granted. So revoke everything first, then
-- grant exactly what is meant.
--   anon:          nothing
--   authenticated: rec_assign_variant(s) for its own auth.uid() (checked inside)
--   service_role:  everything

-- Tables: RLS on and no policies, so even a stray grant exposes no row.
-- service_role bypasses RLS; the owner's security definer RPCs own the rows.
alter table public.rec_experiments enable row level security;
alter table public.rec_user_experiment_assignments enable row level security;
alter table public.rec_impressions enable row level security;
alter table public.rec_outcomes enable row level security;
alter table public.rec_audit_log enable row level security;

revoke all on public.rec_experiments, public.rec_user_experiment_assignments,
              public.rec_impressions, public.rec_outcomes, public.rec_audit_log,
              public.rec_variant_daily_metrics_v1, public.rec_variant_daily_outcomes_v1
  from public, anon, authenticated;
-- `all`, as Supabase grants service_role on new objects.
grant all
  on public.rec_experiments, public.rec_user_experiment_assignments,
     public.rec_impressions, public.rec_outcomes, public.rec_audit_log,
     public.rec_variant_daily_metrics_v1, public.rec_variant_daily_outcomes_v1
  to service_role;
revoke all on sequence public.rec_audit_log_id_seq from public, anon, authenticated;
grant all on sequence public.rec_audit_log_id_seq to service_role;

-- Internal helpers: only what service_role's direct table writes evaluate
-- (the variants check and the salt default).
revoke all on all functions in schema rec_internal from public, anon, authenticated;
grant usage on schema rec_internal to service_role;
grant execute on function rec_internal.variants_problem(jsonb), rec_internal.new_salt(),
                          rec_internal.touch_updated_at()
  to service_role;

-- RPCs.
revoke all on function
  public.rec_assign_variant(text, uuid),
  public.rec_assign_variants(uuid),
  public.rec_set_user_variant(text, uuid, text, uuid),
  public.rec_reset_user_variant(text, uuid, uuid),
  public.rec_active_experiments(),
  public.rec_create_experiment(text, jsonb, uuid, text, text, text, interval),
  public.rec_update_experiment(text, uuid, text, text, jsonb, interval),
  public.rec_activate_experiment(text, uuid),
  public.rec_end_experiment(text, uuid),
  public.rec_rotate_salt(text, uuid, boolean),
  public.rec_rotate_due_salts(boolean, uuid),
  public.rec_list_experiments(text),
  public.rec_get_experiment(text),
  public.rec_search_users(text, int),
  public.rec_user_assignments(uuid),
  public.rec_audit_entries(text, int),
  public.rec_experiment_daily_metrics(text, date, date)
  from public, anon, authenticated;

grant execute on function
  public.rec_assign_variant(text, uuid),
  public.rec_assign_variants(uuid),
  public.rec_set_user_variant(text, uuid, text, uuid),
  public.rec_reset_user_variant(text, uuid, uuid),
  public.rec_active_experiments(),
  public.rec_create_experiment(text, jsonb, uuid, text, text, text, interval),
  public.rec_update_experiment(text, uuid, text, text, jsonb, interval),
  public.rec_activate_experiment(text, uuid),
  public.rec_end_experiment(text, uuid),
  public.rec_rotate_salt(text, uuid, boolean),
  public.rec_rotate_due_salts(boolean, uuid),
  public.rec_list_experiments(text),
  public.rec_get_experiment(text),
  public.rec_search_users(text, int),
  public.rec_user_assignments(uuid),
  public.rec_audit_entries(text, int),
  public.rec_experiment_daily_metrics(text, date, date)
  to service_role;

grant execute on function public.rec_assign_variant(text, uuid), public.rec_assign_variants(uuid)
  to authenticated;
