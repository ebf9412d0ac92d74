-- rec_get_experiment with both the kept assignment counts (the previous
-- migration) and the experiment as the other RPCs report it: the layer by
-- key and its range as [from, to] (rec_internal.experiment_json), with
-- coverage and the analysis settings. Same signature: `create or replace`
-- keeps its grants.
create or replace function public.rec_get_experiment(experiment_key text)
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  e public.rec_experiments := rec_internal.experiment(experiment_key);
begin
  return rec_internal.experiment_json(e)
         || jsonb_build_object('assignment_counts', rec_internal.assignment_counts_json(e.id, e.variants));
end
$$;
comment on function public.rec_get_experiment(text) is
  'One experiment (decision once ended, coverage, layer and range, settings) and its assignment counts per variant and mode.';
