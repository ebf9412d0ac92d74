-- What each API role may do (docs/reference.md §5): anon nothing;
-- authenticated only its own assignment; service_role reads and calls the
-- RPCs but writes no experiment, assignment or audit row directly. Checked
-- both as privileges (every rec_* table and function, so a new one is
-- covered) and by trying, as PostgREST would: SET LOCAL ROLE and the JWT
-- claims in request.jwt.claims.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;
select plan(20);

select public.rec_create_experiment(
  experiment_key => 'pgtap-roles', variants => '[{"name": "a", "weight": 1}]',
  admin_id => '00000000-0000-4000-8000-00000000ad01');
select public.rec_activate_experiment('pgtap-roles', '00000000-0000-4000-8000-00000000ad01');

create temporary view api_functions as
  select p.oid::regprocedure::text as fn, p.proname::text as name, p.oid
    from pg_proc p where p.pronamespace = 'public'::regnamespace and p.proname like 'rec\_%';
create temporary view api_relations as
  select c.oid::regclass::text as rel, c.oid
    from pg_class c
   where c.relnamespace = 'public'::regnamespace and c.relname like 'rec\_%' and c.relkind in ('r', 'v', 'm', 'p');
grant select on api_functions, api_relations to anon, authenticated, service_role;

select ok((select count(*) > 10 from api_functions), 'the API functions are listed');
select is(
  array(select fn from api_functions where has_function_privilege('anon', oid, 'execute') order by 1),
  '{}'::text[], 'anon may execute no rec_* function');
select is(
  array(select rel from api_relations
         where has_table_privilege('anon', oid, 'select, insert, update, delete, truncate') order by 1),
  '{}'::text[], 'anon may touch no rec_* table or view');
select is(
  array(select name from api_functions where has_function_privilege('authenticated', oid, 'execute') order by 1),
  array['rec_assign_variant', 'rec_assign_variants'], 'authenticated may execute only the two assignment RPCs');
select is(
  array(select rel from api_relations
         where has_table_privilege('authenticated', oid, 'select, insert, update, delete, truncate') order by 1),
  '{}'::text[], 'authenticated may touch no rec_* table or view');
select is(
  array(select rel from api_relations
         where rel in ('rec_experiments', 'rec_user_experiment_assignments')
           and has_table_privilege('service_role', oid, 'insert, update, delete, truncate') order by 1),
  '{}'::text[], 'service_role may not write experiments or assignments directly');
select is(has_table_privilege('service_role', 'public.rec_audit_log', 'update, delete, truncate'), false,
          'service_role may not change or remove audit rows');

-- anon, by trying
set local role anon;
select set_config('request.jwt.claims', '{"role": "anon"}', true);
select throws_ok($$ select public.rec_assign_variants('00000000-0000-4000-8000-0000000000a1') $$,
                 '42501', null, 'anon cannot be assigned');
select throws_ok($$ select count(*) from public.rec_experiments $$, '42501', null, 'anon cannot read experiments');
reset role;

-- authenticated, as user a1
set local role authenticated;
select set_config('request.jwt.claims',
                  '{"role": "authenticated", "sub": "00000000-0000-4000-8000-0000000000a1"}', true);
select is(public.rec_assign_variants('00000000-0000-4000-8000-0000000000a1') ->> 'pgtap-roles', 'a',
          'a signed-in user is assigned as themselves');
select is(public.rec_assign_variant('pgtap-roles', '00000000-0000-4000-8000-0000000000a1'), 'a',
          'one experiment, as themselves');
select throws_ok($$ select public.rec_assign_variants('00000000-0000-4000-8000-0000000000b2') $$,
                 '42501', null, 'but not as someone else');
select throws_ok($$ select public.rec_assign_variant('pgtap-roles', '00000000-0000-4000-8000-0000000000b2') $$,
                 '42501', null, 'not even for one experiment');
select throws_ok($$ select count(*) from public.rec_user_experiment_assignments $$,
                 '42501', null, 'authenticated cannot read assignments');
select throws_ok($$ select public.rec_end_experiment('pgtap-roles', '00000000-0000-4000-8000-0000000000a1') $$,
                 '42501', null, 'authenticated cannot end an experiment');
reset role;

-- service_role
set local role service_role;
select set_config('request.jwt.claims', '{"role": "service_role"}', true);
select ok((select count(*) >= 1 from public.rec_experiments where key = 'pgtap-roles'),
          'service_role reads experiments');
select ok((select count(*) >= 2 from public.rec_audit_log), 'service_role reads the audit log');
select throws_ok($$ update public.rec_experiments set name = 'x' where key = 'pgtap-roles' $$,
                 '42501', null, 'service_role cannot update an experiment directly');
select throws_ok($$ delete from public.rec_audit_log $$, '42501', null,
                 'service_role cannot delete audit rows');
select lives_ok($$ insert into public.rec_impressions (user_id, item_id)
                   values ('00000000-0000-4000-8000-0000000000a1', 'item-1') $$,
                'service_role inserts impressions');
reset role;

select * from finish();
rollback;
