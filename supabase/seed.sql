-- Demo data for `supabase db reset` / the first `recsys-exp dev`: one
-- active experiment, created and activated through the audited RPCs.
-- The admin id is a fixed, made-up "seed" actor.
do $$
begin
  if not exists (select 1 from public.rec_experiments where key = 'swipe-blend') then
    perform public.rec_create_experiment(
      experiment_key => 'swipe-blend',
      variants => '[{"name": "control", "weight": 50}, {"name": "blend", "weight": 50}]',
      admin_id => '00000000-0000-4000-8000-000000000001',
      name => 'Swipe blend',
      description => 'Blend swipe history into the ranking score (demo experiment from seed.sql).',
      salt_rotation_interval => null);
    perform public.rec_activate_experiment('swipe-blend', '00000000-0000-4000-8000-000000000001');
  end if;
end
$$;
