-- What the dashboard reads: experiments with counts, one experiment in
-- detail, user search, one user's assignments, the audit trail.

-- Row types for RPCs whose argument names are also result columns.
create type public.rec_experiment_summary as (
  id uuid, key text, name text, description text, status text, variants jsonb,
  salt text, salt_rotation_interval interval, salt_rotated_at timestamptz,
  created_at timestamptz, updated_at timestamptz, started_at timestamptz,
  ended_at timestamptz, assigned_users bigint, manual_users bigint);

create type public.rec_audit_entry as (
  id bigint, experiment_id uuid, experiment_key text, action text, actor_id uuid,
  details jsonb, created_at timestamptz);

create function public.rec_list_experiments(status text default null)
returns setof public.rec_experiment_summary
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if rec_list_experiments.status is not null
     and rec_list_experiments.status not in ('draft', 'active', 'ended') then
    raise exception 'unknown status %; use draft, active or ended',
      quote_literal(rec_list_experiments.status) using errcode = '22023';
  end if;
  return query
    select x.id, x.key, x.name, x.description, x.status, x.variants, x.salt,
           x.salt_rotation_interval, x.salt_rotated_at, x.created_at, x.updated_at,
           x.started_at, x.ended_at,
           coalesce(c.total, 0), coalesce(c.manual, 0)
      from public.rec_experiments x
      left join lateral (
        select count(*) as total, count(*) filter (where a.assignment_mode = 'manual') as manual
          from public.rec_user_experiment_assignments a where a.experiment_id = x.id) c on true
     where rec_list_experiments.status is null or x.status = rec_list_experiments.status
     order by x.created_at desc, x.key;
end
$$;
comment on function public.rec_list_experiments(text) is 'Experiments (optionally of one status) with assignment counts.';

create function public.rec_get_experiment(experiment_key text)
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  e public.rec_experiments := rec_internal.experiment(experiment_key);
begin
  -- One entry per declared variant (zeros included), then any stored
  -- variant no longer declared (cannot happen after draft, but be honest).
  return to_jsonb(e) || jsonb_build_object('assignment_counts', (
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
  'One experiment with assignment counts per variant and mode.';

create function public.rec_search_users(query text, max_rows int default 20)
returns table (user_id uuid, email text, created_at timestamptz, assignments bigint)
language plpgsql stable security definer
set search_path = ''
as $$
declare
  q text := btrim(coalesce(query, ''));
  uid uuid;
begin
  if q = '' or length(q) > 320 then
    raise exception 'query must be a user id or the start of an e-mail address (1-320 characters)'
      using errcode = '22023';
  end if;
  if max_rows is null or max_rows not between 1 and 1000 then
    raise exception 'max_rows must be between 1 and 1000' using errcode = '22023';
  end if;
  if q ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' then
    uid := q::uuid;
    -- A known account, or an id seen only in assignments (anonymous users).
    return query
      select uid, u.email, u.created_at,
             (select count(*) from public.rec_user_experiment_assignments a where a.user_id = uid)
        from (select 1) one
        left join auth.users u on u.id = uid
       where u.id is not null
          or exists (select 1 from public.rec_user_experiment_assignments a where a.user_id = uid);
    return;
  end if;
  return query
    select u.id, u.email, u.created_at,
           (select count(*) from public.rec_user_experiment_assignments a where a.user_id = u.id)
      from auth.users u
     where lower(u.email) like replace(replace(replace(lower(q), '\', '\\'), '%', '\%'), '_', '\_') || '%'
     order by u.email, u.id
     limit max_rows;
end
$$;
comment on function public.rec_search_users(text, int) is
  'Find users by exact id (accounts and assignment-only ids) or e-mail prefix.';

create function public.rec_user_assignments(user_id uuid)
returns table (experiment_id uuid, key text, name text, status text,
               variant text, assignment_mode text, assigned_by uuid, assigned_at timestamptz,
               rule_variant text)
language sql stable security definer
set search_path = ''
as $$
  select x.id, x.key, x.name, x.status, a.variant, a.assignment_mode, a.assigned_by,
         a.assigned_at, rec_internal.bucket(x.salt, a.user_id, x.variants)
    from public.rec_user_experiment_assignments a
    join public.rec_experiments x on x.id = a.experiment_id
   where a.user_id = rec_user_assignments.user_id
   order by x.key
$$;
comment on function public.rec_user_assignments(uuid) is
  'Every experiment a user has a stored assignment in, with what the hash rule would give today.';

create function public.rec_audit_entries(experiment_key text default null, max_rows int default 100)
returns setof public.rec_audit_entry
language plpgsql stable security definer
set search_path = ''
as $$
declare
  eid uuid;
begin
  if max_rows is null or max_rows not between 1 and 1000 then
    raise exception 'max_rows must be between 1 and 1000' using errcode = '22023';
  end if;
  if rec_audit_entries.experiment_key is not null then
    eid := (rec_internal.experiment(rec_audit_entries.experiment_key)).id;
  end if;
  return query
    select l.id, l.experiment_id, coalesce(x.key, l.details->>'experiment_key'), l.action,
           l.actor_id, l.details, l.created_at
      from public.rec_audit_log l
      left join public.rec_experiments x on x.id = l.experiment_id
     where eid is null or l.experiment_id = eid
     order by l.id desc
     limit max_rows;
end
$$;
comment on function public.rec_audit_entries(text, int) is 'Audit trail, newest first.';
