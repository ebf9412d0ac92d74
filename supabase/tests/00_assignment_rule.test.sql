-- The assignment rule on known users. The expected variants were computed
-- outside the database, from the rule as documented (docs/reference.md §2:
-- the first 4 bytes of sha256(salt || user_id) as a fraction of 2^32,
-- scaled by the total weight, against the running sums in array order,
-- zero weights skipped), so a change to the SQL that moves anyone fails here.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;
select plan(16);

select lives_ok($$
  select public.rec_create_experiment(
    experiment_key => 'pgtap-known',
    variants => '[{"name": "control", "weight": 1}, {"name": "paused", "weight": 0},
                  {"name": "treatment", "weight": 2}, {"name": "holdout", "weight": 0.5}]',
    admin_id => '00000000-0000-4000-8000-00000000ad01',
    salt => 'pgtap-known-salt');
  select public.rec_activate_experiment('pgtap-known', '00000000-0000-4000-8000-00000000ad01');
$$, 'an active experiment with a known salt');

select is(public.rec_assign_variant('pgtap-known', u::uuid), expected, 'rule: ' || u)
  from (values
    ('00000000-0000-4000-8000-000000000001', 'control'),
    ('00000000-0000-4000-8000-000000000002', 'control'),
    ('00000000-0000-4000-8000-000000000003', 'treatment'),
    ('00000000-0000-4000-8000-000000000004', 'treatment'),
    ('00000000-0000-4000-8000-000000000005', 'holdout'),
    ('00000000-0000-4000-8000-000000000006', 'control'),
    ('00000000-0000-4000-8000-000000000007', 'control'),
    ('00000000-0000-4000-8000-000000000008', 'control'),
    ('00000000-0000-4000-8000-000000000009', 'treatment'),
    ('00000000-0000-4000-8000-000000000010', 'holdout'),
    ('00000000-0000-4000-8000-000000000011', 'treatment'),
    ('00000000-0000-4000-8000-000000000012', 'treatment')
  ) as known (u, expected);

select is(
  public.rec_assign_variants('00000000-0000-4000-8000-000000000005') ->> 'pgtap-known', 'holdout',
  'rec_assign_variants carries the same variant');

select is(
  (select count(*)::int from public.rec_user_experiment_assignments a
     join public.rec_experiments e on e.id = a.experiment_id
    where e.key = 'pgtap-known' and a.assignment_mode = 'auto'),
  12, 'each first assignment is stored as auto');

select is(
  (select count(*)::int from public.rec_user_experiment_assignments a
     join public.rec_experiments e on e.id = a.experiment_id
    where e.key = 'pgtap-known' and a.variant = 'paused'),
  0, 'a zero-weight variant gets nobody');

select * from finish();
rollback;
