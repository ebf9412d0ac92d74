-- A recorded decision when an experiment ends: shipped (with the winning
-- variant), rolled_back or inconclusive, plus notes. Stored on the
-- experiment and in the audit row of the end (or of a later
-- rec_record_decision), so "what did we decide, and who" never depends on
-- someone's memory.

alter table public.rec_experiments
  add column decision text
    constraint rec_experiments_decision_check
      check (decision in ('shipped', 'rolled_back', 'inconclusive')),
  add column winner text,
  add column decision_notes text
    constraint rec_experiments_decision_notes_check check (length(decision_notes) <= 5000),
  -- A winner exactly when something shipped; a decision only once ended.
  add constraint rec_experiments_winner_check check ((winner is not null) = (decision = 'shipped')),
  add constraint rec_experiments_decision_ended_check check (decision is null or status = 'ended');

comment on column public.rec_experiments.decision is
  'What was decided once it ended: shipped (winner is the variant), rolled_back or inconclusive.';

-- The decision arguments, checked against the experiment before anything is
-- written: 22023 with a message saying what to send instead.
create function rec_internal.check_decision(e public.rec_experiments, decision text, winner text, notes text)
returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if decision is not null and decision not in ('shipped', 'rolled_back', 'inconclusive') then
    raise exception 'unknown decision %; use shipped, rolled_back or inconclusive', quote_literal(decision)
      using errcode = '22023';
  end if;
  if decision is distinct from 'shipped' and winner is not null then
    raise exception 'a winner goes with decision shipped, not %', coalesce(quote_literal(decision), 'no decision')
      using errcode = '22023', hint = 'Send decision => ''shipped'' with the winner, or leave the winner out.';
  end if;
  if decision = 'shipped' and winner is null then
    raise exception 'decision shipped needs the winner: the variant that shipped'
      using errcode = '22023',
            hint = format('Variants are: %s.', (select string_agg(v->>'name', ', ')
                                                  from jsonb_array_elements(e.variants) v));
  end if;
  if winner is not null and not exists (select 1 from jsonb_array_elements(e.variants) v
                                         where v->>'name' = winner) then
    raise exception 'experiment % has no variant %', quote_literal(e.key), quote_literal(winner)
      using errcode = '22023',
            hint = format('Variants are: %s.', (select string_agg(v->>'name', ', ')
                                                  from jsonb_array_elements(e.variants) v));
  end if;
  if length(notes) > 5000 then
    raise exception 'notes are at most 5000 characters, got %', length(notes) using errcode = '22023';
  end if;
end
$$;

-- The old two-argument signature goes: a second overload would make every
-- named call ambiguous. Calls with only experiment_key and admin_id still work.
drop function public.rec_end_experiment(text, uuid);

create function public.rec_end_experiment(
  experiment_key text, admin_id uuid,
  decision text default null, winner text default null, notes text default null)
returns public.rec_experiments
language plpgsql security definer
set search_path = ''
as $$
declare
  e public.rec_experiments;
begin
  perform rec_internal.require_admin_id(admin_id);
  e := rec_internal.experiment(experiment_key, for_update => true);
  perform rec_internal.check_decision(e, decision, winner, notes);
  if e.status = 'ended' then
    raise exception 'experiment % has already ended', quote_literal(e.key)
      using errcode = '55000', hint = 'To record or change its decision use rec_record_decision().';
  elsif e.status <> 'active' then
    raise exception 'experiment % is %; only active experiments can become ended', quote_literal(e.key), e.status
      using errcode = '55000';
  end if;
  update public.rec_experiments x
     set status = 'ended', ended_at = now(),
         decision = rec_end_experiment.decision, winner = rec_end_experiment.winner,
         decision_notes = rec_end_experiment.notes
   where x.id = e.id
  returning * into e;
  perform rec_internal.audit(e.id, 'end_experiment', admin_id, jsonb_build_object(
    'experiment_key', e.key,
    'before', jsonb_build_object('status', 'active'),
    'after', jsonb_build_object('status', 'ended', 'decision', e.decision, 'winner', e.winner,
                                'decision_notes', e.decision_notes)));
  return e;
end
$$;
comment on function public.rec_end_experiment(text, uuid, text, text, text) is
  'active -> ended; stops assigning. Optionally records the decision (shipped + winner, rolled_back, inconclusive) and notes.';

-- Set or change the decision of an ended experiment (all three fields at
-- once: null notes means no notes); the audit row has before and after.
create function public.rec_record_decision(
  experiment_key text, admin_id uuid, decision text,
  winner text default null, notes text default null)
returns public.rec_experiments
language plpgsql security definer
set search_path = ''
as $$
declare
  old public.rec_experiments;
  e public.rec_experiments;
begin
  perform rec_internal.require_admin_id(admin_id);
  old := rec_internal.experiment(experiment_key, for_update => true);
  if decision is null then
    raise exception 'decision is required: shipped, rolled_back or inconclusive' using errcode = '22023';
  end if;
  perform rec_internal.check_decision(old, decision, winner, notes);
  if old.status <> 'ended' then
    raise exception 'experiment % is %; a decision is recorded once it has ended', quote_literal(old.key), old.status
      using errcode = '55000', hint = 'End it with rec_end_experiment(), which also takes the decision.';
  end if;
  update public.rec_experiments x
     set decision = rec_record_decision.decision, winner = rec_record_decision.winner,
         decision_notes = rec_record_decision.notes
   where x.id = old.id
  returning * into e;
  perform rec_internal.audit(e.id, 'record_decision', admin_id, jsonb_build_object(
    'experiment_key', e.key,
    'before', jsonb_build_object('decision', old.decision, 'winner', old.winner,
                                 'decision_notes', old.decision_notes),
    'after', jsonb_build_object('decision', e.decision, 'winner', e.winner,
                                'decision_notes', e.decision_notes)));
  return e;
end
$$;
comment on function public.rec_record_decision(text, uuid, text, text, text) is
  'Record or change the decision of an ended experiment (shipped + winner, rolled_back, inconclusive), audited.';

revoke all on function rec_internal.check_decision(public.rec_experiments, text, text, text)
  from public, anon, authenticated, service_role;
revoke all on function
  public.rec_end_experiment(text, uuid, text, text, text),
  public.rec_record_decision(text, uuid, text, text, text)
  from public, anon, authenticated;
grant execute on function
  public.rec_end_experiment(text, uuid, text, text, text),
  public.rec_record_decision(text, uuid, text, text, text)
  to service_role;
