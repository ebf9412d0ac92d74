-- Stored assignments win over the rule: a user keeps the variant first given
-- through repeated calls and a salt rotation; a manual override wins
-- until reset, and then the rule answers again.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;
select plan(8);

select public.rec_create_experiment(
  experiment_key => 'pgtap-sticky',
  variants => '[{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]',
  admin_id => '00000000-0000-4000-8000-00000000ad01',
  salt => 'pgtap-sticky-salt');
select public.rec_activate_experiment('pgtap-sticky', '00000000-0000-4000-8000-00000000ad01');

-- 40 users, their first variants
create temporary table first_seen on commit drop as
  select u, public.rec_assign_variant('pgtap-sticky', u) as variant
    from (select ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid as u
            from generate_series(1, 40) i) users;

select ok((select count(distinct variant) = 2 from first_seen), 'both variants are in use');

select is(
  (select count(*)::int from first_seen where public.rec_assign_variant('pgtap-sticky', u) <> variant),
  0, 'asking again answers the same');

select lives_ok(
  $$ select public.rec_rotate_salt('pgtap-sticky', '00000000-0000-4000-8000-00000000ad01') $$,
  'rotate the salt without reassigning');

select is(
  (select count(*)::int from first_seen where public.rec_assign_variant('pgtap-sticky', u) <> variant),
  0, 'after a salt rotation every stored user keeps their variant');

select is(
  public.rec_set_user_variant('pgtap-sticky', (select u from first_seen where variant = 'a' limit 1), 'b',
                              '00000000-0000-4000-8000-00000000ad01'),
  'b', 'a manual override answers its variant');

select is(
  public.rec_assign_variant('pgtap-sticky', (select u from first_seen where variant = 'a' limit 1)),
  'b', 'and the override wins over the stored auto row');

select is(
  (select assignment_mode from public.rec_user_experiment_assignments a
     join public.rec_experiments e on e.id = a.experiment_id
    where e.key = 'pgtap-sticky' and a.user_id = (select u from first_seen where variant = 'a' limit 1)),
  'manual', 'stored as manual');

select lives_ok(
  $$ select public.rec_reset_user_variant('pgtap-sticky', (select u from first_seen where variant = 'a' limit 1),
                                          '00000000-0000-4000-8000-00000000ad01') $$,
  'reset the override');

select * from finish();
rollback;
