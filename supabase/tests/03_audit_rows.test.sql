-- Every state change through the RPCs writes exactly one audit row, in the
-- same transaction, naming the action and the admin who did it.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;
select plan(10);

create temporary table audit_seen (n bigint) on commit drop;
insert into audit_seen select coalesce(max(id), 0) from public.rec_audit_log;
-- the actions written since the last look, oldest first; moves the mark
create function pg_temp.new_actions() returns text[] language sql as $$
  with fresh as (
    select l.action, l.actor_id from public.rec_audit_log l where l.id > (select n from audit_seen) order by l.id
  ), mark as (
    update audit_seen set n = coalesce((select max(id) from public.rec_audit_log), n) returning 1
  )
  select array(select action || ' by ' || coalesce(actor_id::text, 'nobody') from fresh)
    from (select count(*) from mark) m
$$;

select public.rec_create_experiment(
  experiment_key => 'pgtap-audit', variants => '[{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]',
  admin_id => '00000000-0000-4000-8000-00000000ad01');
select is(pg_temp.new_actions(), array['create_experiment by 00000000-0000-4000-8000-00000000ad01'], 'create');

select public.rec_update_experiment(experiment_key => 'pgtap-audit', admin_id => '00000000-0000-4000-8000-00000000ad02',
                                    name => 'Audited');
select is(pg_temp.new_actions(), array['update_experiment by 00000000-0000-4000-8000-00000000ad02'], 'update');

select public.rec_activate_experiment('pgtap-audit', '00000000-0000-4000-8000-00000000ad01');
select is(pg_temp.new_actions(), array['activate_experiment by 00000000-0000-4000-8000-00000000ad01'], 'activate');

select public.rec_set_user_variant('pgtap-audit', '00000000-0000-4000-8000-0000000000c3', 'b',
                                   '00000000-0000-4000-8000-00000000ad01');
select is(pg_temp.new_actions(), array['set_user_variant by 00000000-0000-4000-8000-00000000ad01'], 'override');

select public.rec_reset_user_variant('pgtap-audit', '00000000-0000-4000-8000-0000000000c3',
                                     '00000000-0000-4000-8000-00000000ad01');
select is(pg_temp.new_actions(), array['reset_user_variant by 00000000-0000-4000-8000-00000000ad01'], 'reset');

select public.rec_rotate_salt('pgtap-audit', '00000000-0000-4000-8000-00000000ad01');
select is(pg_temp.new_actions(), array['rotate_salt by 00000000-0000-4000-8000-00000000ad01'], 'rotate');

update public.rec_experiments set salt_rotation_interval = '1 day', salt_rotated_at = now() - interval '2 days'
 where key = 'pgtap-audit';
select pg_temp.new_actions();  -- setting the clock back is setup, not under test
select ok('pgtap-audit' = any(array(select public.rec_rotate_due_salts())), 'the scheduler rotates a due salt');
select is((select details ->> 'scheduled' from public.rec_audit_log order by id desc limit 1), 'true',
          'marked scheduled');
select is(pg_temp.new_actions(), array['rotate_salt by nobody'], 'a scheduled rotation, with no actor');

select public.rec_end_experiment('pgtap-audit', '00000000-0000-4000-8000-00000000ad01');
select is(pg_temp.new_actions(), array['end_experiment by 00000000-0000-4000-8000-00000000ad01'], 'end');

select * from finish();
rollback;
