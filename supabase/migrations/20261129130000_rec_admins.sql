-- Who may use the admin functions with their own Supabase Auth session:
-- a `viewer` may read, an `admin` may also change things. Servers and the
-- scheduler keep using a service-level key and need no row here.
-- Granting and revoking are audited like every other admin action.

create table public.rec_admins (
  user_id uuid primary key references auth.users (id) on delete cascade,
  role text not null check (role in ('viewer', 'admin')),
  granted_by uuid,
  granted_at timestamptz not null default now()
);
comment on table public.rec_admins is
  'People who may use the admin functions signed in: viewer (reads) or admin (reads and writes).';

-- RLS on and no policies; changes only through the audited RPCs below, so
-- service_role may read the table but not write it directly.
alter table public.rec_admins enable row level security;
revoke all on public.rec_admins from public, anon, authenticated, service_role;
grant select on public.rec_admins to service_role;

-- Grant a role (or change it). The user must exist in auth.users.
create function public.rec_grant_admin(user_id uuid, role text, admin_id uuid)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  before public.rec_admins;
  after public.rec_admins;
begin
  perform rec_internal.require_admin_id(admin_id);
  if role is null or role not in ('viewer', 'admin') then
    raise exception 'invalid role %', coalesce(quote_literal(role), 'null')
      using errcode = '22023', hint = 'A role is ''viewer'' (reads only) or ''admin'' (reads and writes).';
  end if;
  if user_id is null or not exists (select 1 from auth.users u where u.id = rec_grant_admin.user_id) then
    raise exception 'user % does not exist', coalesce(quote_literal(user_id::text), 'null')
      using errcode = 'P0002', hint = 'The person signs up with Supabase Auth first; then grant their user id.';
  end if;
  select * into before from public.rec_admins a where a.user_id = rec_grant_admin.user_id for update;
  insert into public.rec_admins as a (user_id, role, granted_by)
  values (rec_grant_admin.user_id, rec_grant_admin.role, admin_id)
  on conflict on constraint rec_admins_pkey
  do update set role = excluded.role, granted_by = excluded.granted_by, granted_at = now()
  returning * into after;
  perform rec_internal.audit(null, 'grant_admin', admin_id,
                             jsonb_build_object('user_id', after.user_id, 'role', after.role,
                                                'before', case when before.user_id is null then null
                                                               else to_jsonb(before) end));
  return to_jsonb(after);
end
$$;
comment on function public.rec_grant_admin(uuid, text, uuid) is
  'Make a user a viewer or admin of the admin functions (or change their role), audited.';

-- Remove a user's access; false (and no audit row) if they had none.
create function public.rec_revoke_admin(user_id uuid, admin_id uuid)
returns boolean
language plpgsql security definer
set search_path = ''
as $$
declare
  gone public.rec_admins;
begin
  perform rec_internal.require_admin_id(admin_id);
  delete from public.rec_admins a where a.user_id = rec_revoke_admin.user_id returning * into gone;
  if gone.user_id is null then
    return false;
  end if;
  perform rec_internal.audit(null, 'revoke_admin', admin_id,
                             jsonb_build_object('user_id', gone.user_id, 'before', to_jsonb(gone)));
  return true;
end
$$;
comment on function public.rec_revoke_admin(uuid, uuid) is
  'Remove a user''s access to the admin functions, audited; false if they had none.';

create function public.rec_list_admins()
returns table (user_id uuid, email text, role text, granted_by uuid, granted_at timestamptz)
language sql stable security definer
set search_path = ''
as $$
  select a.user_id, u.email::text, a.role, a.granted_by, a.granted_at
    from public.rec_admins a left join auth.users u on u.id = a.user_id
   order by u.email nulls last, a.user_id
$$;
comment on function public.rec_list_admins() is
  'Everyone with access to the admin functions, with their e-mail where auth.users knows it.';

-- What the functions ask on every session request: the caller's role, or
-- null when they are not (or no longer) an admin.
create function public.rec_admin_role(user_id uuid)
returns text
language sql stable security definer
set search_path = ''
as $$
  select a.role from public.rec_admins a where a.user_id = rec_admin_role.user_id
$$;
comment on function public.rec_admin_role(uuid) is
  'The role (viewer or admin) of a user in rec_admins, or null.';

revoke all on function
  public.rec_grant_admin(uuid, text, uuid),
  public.rec_revoke_admin(uuid, uuid),
  public.rec_list_admins(),
  public.rec_admin_role(uuid)
  from public, anon, authenticated;
grant execute on function
  public.rec_grant_admin(uuid, text, uuid),
  public.rec_revoke_admin(uuid, uuid),
  public.rec_list_admins(),
  public.rec_admin_role(uuid)
  to service_role;
