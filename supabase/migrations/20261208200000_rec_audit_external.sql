-- The audit log, closed to direct writes and checkable from outside.
--
-- 1. No API role (not even service_role) inserts rec_audit_log any more:
--    audit rows come only from the audited rec_* functions (which run as the
--    owner), and created_at is always the database clock, whoever inserts.
-- 2. The chain can be read from outside: rec_audit_chain_head() and
--    rec_audit_chain_rows() (service_role), and rec_audit_entries() (behind
--    admin-audit-log) returns chain_seq, prev_hash and row_hash.
--
-- What the chain protects against, honestly: anyone without the owner's
-- rights (every API role) cannot add, change or remove an audit row at all.
-- The owner (the migration role) and superusers can still rewrite rows and
-- recompute every hash and the head; inside the database that is not
-- detectable. It becomes detectable once a head has been recorded somewhere
-- the owner cannot write (`recsys-exp audit anchor`): `recsys-exp audit
-- verify --anchors` then reports every anchored row that was changed,
-- dropped or moved. Rows written after the last anchor have no such
-- protection. docs/audit.md documents the hash exactly.

-- --- 1. Audit rows only from the audited functions --------------------------

revoke insert on public.rec_audit_log from public, anon, authenticated, service_role;
-- The sequence served only direct inserts; the owner's functions own it.
revoke all on sequence public.rec_audit_log_id_seq from public, anon, authenticated, service_role;

-- Refused by a trigger too, so a later grant cannot reopen the table (same
-- guard as its update/delete/truncate triggers).
create trigger rec_audit_log_insert_only_by_functions
  before insert on public.rec_audit_log
  for each statement execute function rec_internal.refuse_api_write(
    'audit rows are written only by the audited rec_* functions',
    'Call the rec_* admin function that makes the change; it writes the audit row itself.');

-- The database clock decides when an audit row was written: a backdated (or
-- future) created_at from any inserter is replaced.
create function rec_internal.audit_clock() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.created_at := now();
  return new;
end
$$;
revoke all on function rec_internal.audit_clock() from public, anon, authenticated, service_role;

create trigger rec_audit_log_clock before insert on public.rec_audit_log
  for each row execute function rec_internal.audit_clock();

-- --- 2. Reading the chain from outside ---------------------------------------

-- The exact text a row's hash covers (row_hash = sha256 hex of its UTF-8).
-- rec_internal.audit_row_hash hashes exactly this text from now on, so
-- readers get the very bytes that were hashed.
create function rec_internal.audit_hashed_text(r public.rec_audit_log)
returns text
language sql stable
set search_path = ''
as $$
  select coalesce(r.prev_hash, '') || E'\n' ||
    jsonb_build_array(
      r.chain_seq, r.id, r.experiment_id, r.action, r.actor_id, r.details,
      to_char(r.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    )::text;
$$;
revoke all on function rec_internal.audit_hashed_text(public.rec_audit_log)
  from public, anon, authenticated, service_role;

-- The chain's own hash, now from that one text (same bytes as before).
create or replace function rec_internal.audit_row_hash(r public.rec_audit_log)
returns text
language sql stable
set search_path = ''
as $$
  select encode(sha256(convert_to(rec_internal.audit_hashed_text(r), 'UTF8')), 'hex');
$$;

-- The end of the chain: (0, null) while the log is empty.
create function public.rec_audit_chain_head()
returns table (chain_seq bigint, row_hash text)
language sql stable security definer
set search_path = ''
as $$
  select h.seq, h.hash from rec_internal.audit_chain_head h;
$$;
comment on function public.rec_audit_chain_head() is
  'The last chain_seq and row_hash of the audit chain; record it outside the database to anchor the chain.';

-- Chained rows after after_seq, in chain order, with the text each hash covers.
create function public.rec_audit_chain_rows(after_seq bigint default 0, max_rows int default 1000)
returns table (
  chain_seq bigint, id bigint, experiment_id uuid, action text, actor_id uuid, details jsonb,
  created_at timestamptz, prev_hash text, row_hash text, hashed_text text)
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if after_seq is null or after_seq < 0 then
    raise exception 'after_seq must be 0 or a chain_seq' using errcode = '22023';
  end if;
  if max_rows is null or max_rows not between 1 and 10000 then
    raise exception 'max_rows must be between 1 and 10000' using errcode = '22023';
  end if;
  return query
    select l.chain_seq, l.id, l.experiment_id, l.action, l.actor_id, l.details, l.created_at,
           l.prev_hash, l.row_hash, rec_internal.audit_hashed_text(l)
      from public.rec_audit_log l
     where l.chain_seq > rec_audit_chain_rows.after_seq
     order by l.chain_seq
     limit rec_audit_chain_rows.max_rows;
end
$$;
comment on function public.rec_audit_chain_rows(bigint, int) is
  'Audit rows after after_seq in chain order, with the exact text each row_hash covers (see docs/audit.md).';

revoke all on function public.rec_audit_chain_head(), public.rec_audit_chain_rows(bigint, int)
  from public, anon, authenticated;
grant execute on function public.rec_audit_chain_head(), public.rec_audit_chain_rows(bigint, int)
  to service_role;

-- admin-audit-log's entries carry their place in the chain. Same signature,
-- so callers are unchanged; the row type gains three attributes.
alter type public.rec_audit_entry
  add attribute chain_seq bigint,
  add attribute prev_hash text,
  add attribute row_hash text;

create or replace function public.rec_audit_entries(experiment_key text default null, max_rows int default 100)
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
           l.actor_id, l.details, l.created_at, l.chain_seq, l.prev_hash, l.row_hash
      from public.rec_audit_log l
      left join public.rec_experiments x on x.id = l.experiment_id
     where eid is null or l.experiment_id = eid
     order by l.id desc
     limit max_rows;
end
$$;
comment on function public.rec_audit_entries(text, int) is
  'Audit trail, newest first, with each entry''s chain_seq, prev_hash and row_hash.';

comment on column public.rec_audit_log.row_hash is
  'sha256 (hex) of the text rec_audit_chain_rows() returns as hashed_text (docs/audit.md). Detects edits by'
  ' anyone who does not recompute the chain; an owner rewrite is exposed only by an anchor recorded elsewhere.';
