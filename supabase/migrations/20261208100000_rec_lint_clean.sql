-- `supabase db lint` (plpgsql_check) clean: variants_problem initialised its
-- text[] local from an untyped '{}' literal, which plpgsql_check reports as
-- "target type is different type than source type". Same function, same
-- behaviour, a typed empty array. `create or replace` keeps its owner and
-- grants (execute is revoked from every API role; the table check and the
-- security definer RPCs call it as the owner).
create or replace function rec_internal.variants_problem(variants jsonb)
returns text
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  v jsonb;
  pos int := 0;
  names text[] := array[]::text[];
  total double precision := 0;
begin
  if variants is null or jsonb_typeof(variants) <> 'array' then
    return 'variants must be a JSON array of {"name", "weight"} objects';
  end if;
  if jsonb_array_length(variants) = 0 then
    return 'variants must not be empty';
  end if;
  if jsonb_array_length(variants) > 100 then
    return 'at most 100 variants are allowed';
  end if;
  for v in select value from jsonb_array_elements(variants) loop
    pos := pos + 1;
    if jsonb_typeof(v) <> 'object' then
      return format('variant #%s must be an object with "name" and "weight"', pos);
    end if;
    if (select count(*) from jsonb_object_keys(v) k where k not in ('name', 'weight')) > 0 then
      return format('variant #%s has fields other than "name" and "weight"', pos);
    end if;
    if jsonb_typeof(v->'name') is distinct from 'string' then
      return format('variant #%s needs a string "name"', pos);
    end if;
    if (v->>'name') !~ '^[A-Za-z0-9_.-]{1,64}$' then
      return format('variant name %s must match ^[A-Za-z0-9_.-]{1,64}$', v->'name');
    end if;
    if (v->>'name') = any(names) then
      return format('variant name %s appears more than once', v->'name');
    end if;
    names := names || (v->>'name');
    if jsonb_typeof(v->'weight') is distinct from 'number' then
      return format('variant %s needs a numeric "weight"', v->'name');
    end if;
    -- Bounded so the rule's double arithmetic is exact enough and never
    -- overflows or underflows.
    if (v->>'weight')::numeric not between 0 and 1000000
       or ((v->>'weight')::numeric > 0 and (v->>'weight')::numeric < 0.000001) then
      return format('variant %s has weight %s; weights must be 0 or between 0.000001 and 1000000',
                    v->'name', v->'weight');
    end if;
    total := total + (v->>'weight')::double precision;
  end loop;
  if total <= 0 then
    return 'at least one variant needs a positive weight';
  end if;
  return null;
end
$$;
