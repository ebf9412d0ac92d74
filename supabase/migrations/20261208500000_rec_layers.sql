-- Traffic allocation and mutually exclusive experiments (docs/reference.md,
-- "Layers and coverage"): layers, per-experiment coverage and layer range,
-- the extended assignment rule, and the experiment settings the results use
-- (sequential, sequential_tuning, cuped_days).

-- An exclusion constraint over (layer, range) needs gist support for uuid
-- equality. Supabase keeps extensions in their own schema.
create extension if not exists btree_gist with schema extensions;

-- A layer is a hash space of 10,000 buckets. Its salt never changes, so a
-- user's bucket in a layer never changes either.
create table public.rec_layers (
  id uuid primary key default gen_random_uuid(),
  key text not null unique
    constraint rec_layers_key_format check (key ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
  name text,
  description text,
  salt text not null default rec_internal.new_salt()
    constraint rec_layers_salt_check check (length(salt) between 1 and 256),
  created_at timestamptz not null default now()
);
comment on table public.rec_layers is
  'Layers: hash spaces of 10,000 buckets; experiments of one layer hold disjoint ranges, so never share a user.';

-- The salt is what makes layer eligibility reproducible: refuse changing it,
-- whoever asks (the owner included).
create function rec_internal.layer_salt_frozen() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.salt is distinct from old.salt then
    raise exception 'the salt of layer % never changes', quote_literal(old.key)
      using errcode = '55000',
            hint = 'Eligibility in a layer must stay the same for every user; create a new layer instead.';
  end if;
  return new;
end
$$;
create trigger rec_layers_salt_frozen before update on public.rec_layers
  for each row execute function rec_internal.layer_salt_frozen();

-- Existing experiments: everyone eligible (coverage 1, no layer) and the
-- analysis settings that leave running results as they were (false/5000/0).
-- New experiments then default to sequential results and 14 CUPED days.
alter table public.rec_experiments
  add column coverage double precision not null default 1
    constraint rec_experiments_coverage_check check (coverage >= 0 and coverage <= 1),
  add column layer_id uuid references public.rec_layers (id),
  add column layer_range int4range
    constraint rec_experiments_layer_range_check check (
      layer_range is null
      or (not isempty(layer_range) and not lower_inf(layer_range) and not upper_inf(layer_range)
          and lower(layer_range) >= 0 and upper(layer_range) <= 10000)),
  add column sequential boolean not null default false,
  add column sequential_tuning int not null default 5000
    constraint rec_experiments_sequential_tuning_check check (sequential_tuning between 100 and 10000000),
  add column cuped_days int not null default 0
    constraint rec_experiments_cuped_days_check check (cuped_days between 0 and 60),
  add constraint rec_experiments_layer_has_range check ((layer_id is null) = (layer_range is null)),
  -- Experiments of one layer that have not ended (drafts included: a draft
  -- reserves its range) never overlap. Holds under concurrent writers: the
  -- second waits for the first and then fails with 23P01.
  add constraint rec_experiments_layer_overlap
    exclude using gist (layer_id with =, layer_range with &&) where (status <> 'ended');
alter table public.rec_experiments
  alter column sequential set default true,
  alter column cuped_days set default 14;
comment on column public.rec_experiments.coverage is
  'Share of eligible users who enter (0..1); raising it only adds users.';
comment on column public.rec_experiments.layer_range is
  'Half-open range [from, to) of the layer''s 10,000 buckets this experiment takes.';

create index rec_experiments_layer_idx on public.rec_experiments (layer_id) where layer_id is not null;

-- The assignment rule, the one implementation every path uses
-- (docs/reference.md, "Assignment rule"):
--   eligible = no layer, or from <= floor(y * 10000) < to, where
--     y = first 4 bytes of sha256(utf8('layer:' || layer_salt || user_id::text)), big-endian, / 2^32
--   x = first 4 bytes of sha256(utf8(salt || user_id::text)), big-endian, / 2^32
--   r0 = 0, ri = r(i-1) + weight_i (array order, IEEE double); W = the last ri
--   the variant i with weight_i > 0 and r(i-1) <= x*W < r(i-1) + coverage*weight_i
-- Null: the user is not in the experiment. With coverage 1 and no layer this
-- is exactly the original rule (the first positive variant with x*W < ri).
-- Each float8 operation rounds on its own (no fused multiply-add).
-- One user, many experiments (the i-th of each array describes one), so the
-- hot path evaluates all it needs in one call; the single-experiment form
-- below is this same function.
create function rec_internal.rule_variants(user_id uuid, salts text[], variants jsonb[],
                                           coverages double precision[], layer_salts text[],
                                           layer_ranges int4range[])
returns text[]
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  found text[] := array_fill(null::text, array[coalesce(cardinality(salts), 0)]);
  id_text text := user_id::text;
  h bytea;
  x double precision;
  w double precision;
  r double precision;
  weights double precision[];
  vs jsonb;
  lr int4range;
  n int;
begin
  for e in 1 .. coalesce(cardinality(salts), 0) loop
    vs := variants[e];
    lr := layer_ranges[e];
    n := jsonb_array_length(vs);
    continue when id_text is null or salts[e] is null or coverages[e] is null or n is null;
    -- Eligibility. A range of the whole layer holds every bucket: no hash needed.
    if layer_salts[e] is not null and (lr is null or lower(lr) > 0 or upper(lr) < 10000) then
      h := pg_catalog.sha256(convert_to('layer:' || layer_salts[e] || id_text, 'UTF8'));
      -- floor(y * 10000) with y = prefix / 2^32, exact in integers: (prefix * 10000) >> 32
      continue when lr is null
        or not lr @> ((((get_byte(h, 0)::bigint << 24) | (get_byte(h, 1)::bigint << 16)
                        | (get_byte(h, 2)::bigint << 8) | get_byte(h, 3)::bigint) * 10000) >> 32)::int;
    end if;
    -- Each weight's JSON text parsed once, summed in array order.
    weights := array[]::double precision[];
    w := 0;
    for i in 1 .. n loop
      weights[i] := (vs->(i - 1)->>'weight')::double precision;
      w := w + weights[i];
    end loop;
    h := pg_catalog.sha256(convert_to(salts[e] || id_text, 'UTF8'));
    x := (((get_byte(h, 0)::bigint << 24) | (get_byte(h, 1)::bigint << 16)
           | (get_byte(h, 2)::bigint << 8) | get_byte(h, 3)::bigint) / 4294967296.0::double precision) * w;
    r := 0;
    for i in 1 .. n loop
      if weights[i] > 0 and r <= x and x < r + coverages[e] * weights[i] then
        found[e] := vs->(i - 1)->>'name';
        exit;
      end if;
      r := r + weights[i];
    end loop;
  end loop;
  return found;
end
$$;

-- The rule for one experiment.
create function rec_internal.rule_variant(salt text, user_id uuid, variants jsonb,
                                          coverage double precision, layer_salt text,
                                          layer_range int4range)
returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select (rec_internal.rule_variants(user_id, array[salt], array[variants], array[coverage],
                                     array[layer_salt], array[layer_range]))[1]
$$;

-- The original rule (no layer, coverage 1), kept by name for callers of it;
-- it is the function above, not a second implementation.
create or replace function rec_internal.bucket(salt text, user_id uuid, variants jsonb)
returns text
language sql immutable strict parallel safe
set search_path = ''
as $$
  select rec_internal.rule_variant(salt, user_id, variants, 1, null, null)
$$;

-- The layer salt of an experiment (null without a layer).
create function rec_internal.layer_salt(layer_id uuid)
returns text
language sql stable
set search_path = ''
as $$
  select l.salt from public.rec_layers l where l.id = layer_salt.layer_id
$$;

-- The rule for one experiment row: what every assigning path calls.
create function rec_internal.rule_for(e public.rec_experiments, user_id uuid)
returns text
language sql stable
set search_path = ''
as $$
  select rec_internal.rule_variant(e.salt, rule_for.user_id, e.variants, e.coverage,
                                   case when e.layer_id is not null then rec_internal.layer_salt(e.layer_id) end,
                                   e.layer_range)
$$;

-- Store `variant` as the user's automatic assignment unless a row exists;
-- the stored variant either way. Never overwrites a row: concurrent first
-- calls insert at most one row (ON CONFLICT DO NOTHING waits for the other
-- inserter) and then all read that same row.
create function rec_internal.store_auto(experiment_id uuid, user_id uuid, variant text)
returns text
language plpgsql volatile
set search_path = ''
as $$
declare
  v text;
begin
  insert into public.rec_user_experiment_assignments (experiment_id, user_id, variant, assignment_mode)
  values (store_auto.experiment_id, store_auto.user_id, store_auto.variant, 'auto')
  on conflict on constraint rec_user_experiment_assignments_pkey do nothing
  returning rec_user_experiment_assignments.variant into v;
  if v is null then
    select a.variant into v from public.rec_user_experiment_assignments a
     where a.experiment_id = store_auto.experiment_id and a.user_id = store_auto.user_id;
  end if;
  return v;
end
$$;

-- The stored variant of an active experiment, or the rule's variant stored
-- as `auto`; null (nothing stored) when the rule leaves the user out.
create or replace function rec_internal.sticky_variant(e public.rec_experiments, user_id uuid)
returns text
language plpgsql volatile
set search_path = ''
as $$
declare
  v text := rec_internal.rule_for(e, sticky_variant.user_id);
begin
  if v is null then
    return null;  -- not eligible or not covered: not in the experiment
  end if;
  return rec_internal.store_auto(e.id, sticky_variant.user_id, v);
end
$$;

-- Experiments as the API reports them: the layer by key and its range as
-- [from, to] (instead of the layer id and the range's text form).
create function rec_internal.experiment_json(e public.rec_experiments)
returns jsonb
language sql stable
set search_path = ''
as $$
  select to_jsonb(e) - 'layer_id' - 'layer_range'
         || jsonb_build_object(
              'layer', (select l.key from public.rec_layers l where l.id = e.layer_id),
              'layer_range', case when e.layer_range is not null
                                  then jsonb_build_array(lower(e.layer_range), upper(e.layer_range)) end)
$$;

-- Who may do what: as the other tables. RLS on and no policies; service_role
-- reads, and changes go through the audited RPCs only.
alter table public.rec_layers enable row level security;
revoke all on public.rec_layers from public, anon, authenticated, service_role;
grant select on public.rec_layers to service_role;
create trigger rec_layers_audited_writes_only
  before insert or update or delete or truncate on public.rec_layers
  for each statement execute function rec_internal.refuse_api_write(
    'layers change only through the audited rec_* functions',
    'Use rec_create_layer.');

revoke all on function rec_internal.rule_variant(text, uuid, jsonb, double precision, text, int4range),
                       rec_internal.rule_variants(uuid, text[], jsonb[], double precision[], text[], int4range[]),
                       rec_internal.store_auto(uuid, uuid, text),
                       rec_internal.layer_salt(uuid),
                       rec_internal.rule_for(public.rec_experiments, uuid),
                       rec_internal.experiment_json(public.rec_experiments),
                       rec_internal.layer_salt_frozen()
  from public, anon, authenticated, service_role;
