-- The role lookup the admin functions make on every signed-in request now
-- also checks the caller's Auth session, in the same round trip: a token
-- whose session has been signed out (GoTrue deletes the auth.sessions row on
-- logout) or has passed its `not_after` gets no role, so the functions refuse
-- it on the next request instead of honouring it until it expires.
--
-- rec_admin_role(user_id) keeps working: session_id defaults to null, which
-- checks membership only (tokens that name no session, the CLI, tests).

drop function if exists public.rec_admin_role(uuid);

create function public.rec_admin_role(user_id uuid, session_id uuid default null)
returns text
language sql stable security definer
set search_path = ''
as $$
  select a.role
    from public.rec_admins a
   where a.user_id = rec_admin_role.user_id
     and (rec_admin_role.session_id is null
          or exists (select 1
                       from auth.sessions s
                      where s.id = rec_admin_role.session_id
                        and s.user_id = rec_admin_role.user_id
                        and (s.not_after is null or s.not_after > now())))
$$;
comment on function public.rec_admin_role(uuid, uuid) is
  'The role (viewer or admin) of a user in rec_admins, or null; with a session id, '
  'null too unless that auth.sessions row is the user''s and has not ended.';

revoke all on function public.rec_admin_role(uuid, uuid) from public, anon, authenticated;
grant execute on function public.rec_admin_role(uuid, uuid) to service_role;
