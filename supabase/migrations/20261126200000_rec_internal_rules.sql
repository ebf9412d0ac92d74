-- Pure rules shared by the tables' checks and the RPCs: variant validation
-- and the assignment rule of docs/reference.md §2. They live in a schema that
-- PostgREST does not expose and that no API role may use.

create schema if not exists rec_internal;
revoke all on schema rec_internal from public;

-- Describes what is wrong with a variants array, or returns null when it is
-- valid. Table checks use it as a boolean; RPCs raise its text as 22023 so
-- the person who sent the variants learns exactly what to fix.
create or replace function rec_internal.variants_problem(variants jsonb)
returns text
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  v jsonb;
  pos int := 0;
  names text[] := '{}';
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

-- docs/reference.md §2, exactly:
--   x = first 4 bytes of sha256(utf8(salt || user_id::text)), big-endian, / 2^32
--   the first variant with weight > 0 whose running weight sum r has x*W < r.
-- Arithmetic is IEEE double in array order, as in any language's float.
create or replace function rec_internal.bucket(salt text, user_id uuid, variants jsonb)
returns text
language plpgsql immutable strict parallel safe
set search_path = ''
as $$
declare
  h bytea := pg_catalog.sha256(convert_to(salt || user_id::text, 'UTF8'));
  x double precision := ((get_byte(h, 0)::bigint << 24) | (get_byte(h, 1)::bigint << 16)
                        | (get_byte(h, 2)::bigint << 8) | get_byte(h, 3)::bigint)
                        / 4294967296.0::double precision;
  w double precision := 0;
  r double precision := 0;
  v jsonb;
  last_positive text;
begin
  for v in select value from jsonb_array_elements(variants) loop
    w := w + (v->>'weight')::double precision;
  end loop;
  for v in select value from jsonb_array_elements(variants) loop
    r := r + (v->>'weight')::double precision;
    if (v->>'weight')::double precision > 0 then
      last_positive := v->>'name';
      if x * w < r then
        return last_positive;
      end if;
    end if;
  end loop;
  return last_positive;  -- unreachable for valid variants (x < 1)
end
$$;

-- Random salt without pgcrypto: two v4 uuids give 244 random bits.
create or replace function rec_internal.new_salt()
returns text
language sql volatile
set search_path = ''
as $$
  select replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')
$$;
