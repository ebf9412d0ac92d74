-- A hash chain over rec_audit_log, so an audit row changed, deleted or moved
-- after the fact (even by the table owner) is detectable with
-- rec_verify_audit_chain().
--
-- Each row gets chain_seq (its position, 1, 2, ...), prev_hash (the
-- row_hash of the row before it; null for the first) and row_hash =
-- sha256(prev_hash, newline, the row's canonical text). Positions are given
-- in commit order by a deferred trigger that locks a one-row chain head, so
-- concurrent writers queue at commit and can never fork the chain. Taking
-- the head lock last (at commit, after every other lock of the
-- transaction) keeps it out of any lock cycle with the experiment rows.

-- An audit row keeps the id of its experiment even if the owner deletes the
-- experiment: `on delete set null` would rewrite audit rows (and break the
-- chain) as a side effect of a delete.
alter table public.rec_audit_log drop constraint rec_audit_log_experiment_id_fkey;

alter table public.rec_audit_log
  add column chain_seq bigint,
  add column prev_hash text,
  add column row_hash text;
comment on column public.rec_audit_log.chain_seq is
  'Position in the audit hash chain (commit order), set when the writing transaction commits.';
comment on column public.rec_audit_log.prev_hash is 'row_hash of the row at chain_seq - 1; null for the first.';
comment on column public.rec_audit_log.row_hash is
  'sha256 (hex) of prev_hash and the row''s content; see rec_verify_audit_chain().';
create unique index rec_audit_log_chain_seq_idx on public.rec_audit_log (chain_seq);

-- The end of the chain: its last position and hash. One row, always.
create table rec_internal.audit_chain_head (
  one_row boolean primary key default true constraint audit_chain_head_one_row check (one_row),
  seq bigint not null default 0,
  hash text
);
comment on table rec_internal.audit_chain_head is
  'Last chain_seq and row_hash of rec_audit_log; locked by each committing audit writer.';
insert into rec_internal.audit_chain_head default values;
revoke all on rec_internal.audit_chain_head from public, anon, authenticated, service_role;

-- The hash of an audit row from its content, position and predecessor. The
-- canonical text is a JSON array (jsonb prints equal values identically)
-- with the time in UTC, so no session setting changes it.
create function rec_internal.audit_row_hash(r public.rec_audit_log)
returns text
language sql stable
set search_path = ''
as $$
  select encode(sha256(convert_to(
    coalesce(r.prev_hash, '') || E'\n' ||
    jsonb_build_array(
      r.chain_seq, r.id, r.experiment_id, r.action, r.actor_id, r.details,
      to_char(r.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    )::text, 'UTF8')), 'hex');
$$;

-- Whatever an inserter puts in the chain columns, the chain decides them.
create function rec_internal.audit_unchained() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.chain_seq := null;
  new.prev_hash := null;
  new.row_hash := null;
  return new;
end
$$;

create trigger rec_audit_log_unchained before insert on public.rec_audit_log
  for each row execute function rec_internal.audit_unchained();

-- At commit: append the row to the chain. Security definer, as the writer
-- (service_role included) may not touch the chain head.
create function rec_internal.audit_chain_append() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  head rec_internal.audit_chain_head;
  r public.rec_audit_log;
begin
  select * into strict head from rec_internal.audit_chain_head h for update;
  select * into r from public.rec_audit_log l where l.id = new.id;
  if not found then
    return null;  -- deleted again before commit (only the owner can)
  end if;
  r.chain_seq := head.seq + 1;
  r.prev_hash := head.hash;
  r.row_hash := rec_internal.audit_row_hash(r);
  update public.rec_audit_log l
     set chain_seq = r.chain_seq, prev_hash = r.prev_hash, row_hash = r.row_hash
   where l.id = r.id;
  update rec_internal.audit_chain_head h set seq = r.chain_seq, hash = r.row_hash;
  return null;
end
$$;

create constraint trigger rec_audit_log_chain after insert on public.rec_audit_log
  deferrable initially deferred
  for each row execute function rec_internal.audit_chain_append();

revoke all on function rec_internal.audit_row_hash(public.rec_audit_log), rec_internal.audit_unchained(),
                       rec_internal.audit_chain_append()
  from public, anon, authenticated, service_role;

-- Chain the rows written before this migration, in id order. The lock is
-- taken inside the block: the Supabase CLI runs a file's statements outside
-- any transaction block, where a bare LOCK TABLE is refused (25P01); taken
-- here it holds until the transaction running this block ends.
do $$
declare
  r public.rec_audit_log;
  n bigint := 0;
  prev text := null;
begin
  lock table public.rec_audit_log in exclusive mode;
  for r in select * from public.rec_audit_log l order by l.id loop
    n := n + 1;
    r.chain_seq := n;
    r.prev_hash := prev;
    r.row_hash := rec_internal.audit_row_hash(r);
    update public.rec_audit_log l
       set chain_seq = r.chain_seq, prev_hash = r.prev_hash, row_hash = r.row_hash
     where l.id = r.id;
    prev := r.row_hash;
  end loop;
  update rec_internal.audit_chain_head set seq = n, hash = prev;
end
$$;

-- The rows that break the chain, each with a sentence saying what is wrong;
-- no rows when the chain is intact. One snapshot (stable), so a concurrent
-- commit is seen either whole or not at all.
create function public.rec_verify_audit_chain()
returns table (id bigint, problem text)
language plpgsql stable security definer
set search_path = ''
as $$
declare
  r public.rec_audit_log;
  head rec_internal.audit_chain_head;
  expected bigint := 1;
  prev text := null;
  last_id bigint := null;
  problems text[];
begin
  for r in select * from public.rec_audit_log l order by l.chain_seq nulls last, l.id loop
    if r.chain_seq is null then
      id := r.id;
      problem := 'the row is not in the chain (chain_seq is null): it was added or changed outside the chain';
      return next;
      continue;
    end if;
    problems := '{}';
    if r.chain_seq < expected then
      problems := problems || format('chain position %s is taken by more than one row', r.chain_seq);
    elsif r.chain_seq > expected then
      problems := problems || format(
        'chain position %s comes after %s: %s row(s) before it are missing (deleted or moved)',
        r.chain_seq, expected - 1, r.chain_seq - expected);
    end if;
    if r.prev_hash is distinct from prev then
      problems := problems || 'its prev_hash is not the hash of the row before it in the chain'
        ' (a row was deleted, inserted or reordered before it)'::text;
    end if;
    if r.row_hash is distinct from rec_internal.audit_row_hash(r) then
      problems := problems || 'its content does not match its row_hash (the row was changed after it was written)'::text;
    end if;
    if cardinality(problems) > 0 then
      id := r.id;
      problem := array_to_string(problems, '; ');
      return next;
    end if;
    expected := greatest(expected, r.chain_seq + 1);
    prev := r.row_hash;
    last_id := r.id;
  end loop;
  select * into strict head from rec_internal.audit_chain_head;
  if head.seq <> expected - 1 or head.hash is distinct from prev then
    id := last_id;
    problem := format(
      'the chain head records %s chained row(s) but the chain ends at position %s with another hash:'
      ' rows at the end of the chain were deleted or changed', head.seq, expected - 1);
    return next;
  end if;
end
$$;
comment on function public.rec_verify_audit_chain() is
  'Audit rows that break the hash chain (id, problem); no rows when the audit log is intact.';

revoke all on function public.rec_verify_audit_chain() from public, anon, authenticated;
grant execute on function public.rec_verify_audit_chain() to service_role;
