-- A feature-flag evaluator written in PL/pgSQL, the baseline of the flags
-- benchmark: the same semantics as aura.flag_enabled for the flags the
-- benchmark uses (strategies default and flexibleRollout, constraints IN and
-- NOT_IN with inverted, Unleash's resolveContextValue, MurmurHash3 buckets),
-- written the way an application would without aura: the definition is read
-- from a table by key on every call.
CREATE SCHEMA IF NOT EXISTS bench_flags;

CREATE TABLE bench_flags.defs (key text PRIMARY KEY, def jsonb NOT NULL);

-- a * b modulo 2^32 without overflowing bigint
CREATE FUNCTION bench_flags.mul32(a bigint, b bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT ((a * (b & 65535)) + (((a * (b >> 16)) & 65535) << 16)) & 4294967295 $$;

CREATE FUNCTION bench_flags.murmur3(s text, seed bigint) RETURNS bigint
    LANGUAGE plpgsql IMMUTABLE STRICT
    AS $$
DECLARE
    b bytea := convert_to(s, 'UTF8');
    len int := length(b);
    nb int := length(b) / 4;
    h bigint := seed;
    k bigint;
    i int := 0;
BEGIN
    WHILE i < nb * 4 LOOP
        k := get_byte(b, i)::bigint | (get_byte(b, i + 1)::bigint << 8)
             | (get_byte(b, i + 2)::bigint << 16) | (get_byte(b, i + 3)::bigint << 24);
        k := bench_flags.mul32(k, 3432918353);
        k := ((k << 15) | (k >> 17)) & 4294967295;
        k := bench_flags.mul32(k, 461845907);
        h := h # k;
        h := ((h << 13) | (h >> 19)) & 4294967295;
        h := (h * 5 + 3864292196) & 4294967295;
        i := i + 4;
    END LOOP;
    k := 0;
    IF len % 4 >= 3 THEN k := k # (get_byte(b, i + 2)::bigint << 16); END IF;
    IF len % 4 >= 2 THEN k := k # (get_byte(b, i + 1)::bigint << 8); END IF;
    IF len % 4 >= 1 THEN
        k := k # get_byte(b, i)::bigint;
        k := bench_flags.mul32(k, 3432918353);
        k := ((k << 15) | (k >> 17)) & 4294967295;
        k := bench_flags.mul32(k, 461845907);
        h := h # k;
    END IF;
    h := h # len;
    h := h # (h >> 16);
    h := bench_flags.mul32(h, 2246822507);
    h := h # (h >> 13);
    h := bench_flags.mul32(h, 3266489909);
    h := h # (h >> 16);
    RETURN h;
END
$$;

-- Unleash's resolveContextValue: a non-empty top-level field, else properties
CREATE FUNCTION bench_flags.ctx_value(ctx jsonb, field text) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT coalesce(nullif(ctx ->> field, ''), nullif(ctx -> 'properties' ->> field, '')) $$;

CREATE FUNCTION bench_flags.enabled(p_key text, ctx jsonb) RETURNS boolean
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
    f jsonb;
    s jsonb;
    c jsonb;
    val text;
    ok boolean;
    sticky text;
    grp text;
    pct numeric;
BEGIN
    SELECT d.def INTO f FROM bench_flags.defs d WHERE d.key = p_key;
    IF f IS NULL OR NOT coalesce((f ->> 'enabled')::boolean, false) THEN
        RETURN false;
    END IF;
    IF jsonb_array_length(coalesce(f -> 'strategies', '[]')) = 0 THEN
        RETURN true;
    END IF;
    FOR s IN SELECT * FROM jsonb_array_elements(f -> 'strategies') LOOP
        ok := true;
        FOR c IN SELECT * FROM jsonb_array_elements(coalesce(s -> 'constraints', '[]')) LOOP
            val := bench_flags.ctx_value(ctx, c ->> 'contextName');
            IF c ->> 'operator' IN ('IN', 'NOT_IN') THEN
                ok := val IS NOT NULL AND EXISTS (
                    SELECT 1 FROM jsonb_array_elements_text(c -> 'values') v WHERE v <> '' AND btrim(v) = val);
                IF c ->> 'operator' = 'NOT_IN' THEN ok := NOT ok; END IF;
                IF coalesce((c ->> 'inverted')::boolean, false) THEN ok := NOT ok; END IF;
            ELSE
                ok := false;
            END IF;
            EXIT WHEN NOT ok;
        END LOOP;
        CONTINUE WHEN NOT ok;
        IF s ->> 'name' = 'default' THEN
            RETURN true;
        ELSIF s ->> 'name' = 'flexibleRollout' THEN
            sticky := coalesce(nullif(s -> 'parameters' ->> 'stickiness', ''), 'default');
            IF sticky = 'default' THEN
                val := coalesce(nullif(ctx ->> 'userId', ''), nullif(ctx ->> 'sessionId', ''),
                                (floor(random() * 10000) + 1)::text);
            ELSIF sticky = 'random' THEN
                val := (floor(random() * 10000) + 1)::text;
            ELSE
                val := bench_flags.ctx_value(ctx, sticky);
            END IF;
            CONTINUE WHEN val IS NULL;
            grp := coalesce(nullif(s -> 'parameters' ->> 'groupId', ''), p_key);
            pct := (s -> 'parameters' ->> 'rollout')::numeric;
            IF pct > 0 AND bench_flags.murmur3(grp || ':' || val, 0) % 100 + 1 <= pct THEN
                RETURN true;
            END IF;
        END IF;
    END LOOP;
    RETURN false;
END
$$;

-- elapsed seconds of one query
CREATE FUNCTION bench_flags.seconds(q text) RETURNS float8
    LANGUAGE plpgsql
    AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE q;
    RETURN extract(epoch FROM clock_timestamp() - t0);
END
$$;

-- CPU seconds this backend has used (Linux /proc; clock ticks of 1/100 s):
-- on a shared machine, CPU time measures the evaluator, wall time the load
CREATE FUNCTION bench_flags.cpu() RETURNS float8
    LANGUAGE sql
    AS $$
    SELECT (split_part(r, ' ', 12)::float8 + split_part(r, ' ', 13)::float8) / 100.0
      FROM (SELECT substr(s, strpos(s, ') ') + 2) AS r
              FROM (SELECT pg_read_file('/proc/' || pg_backend_pid() || '/stat') AS s) a) b
$$;

CREATE FUNCTION bench_flags.cpu_seconds(q text) RETURNS float8
    LANGUAGE plpgsql
    AS $$
DECLARE
    c0 float8 := bench_flags.cpu();
BEGIN
    EXECUTE q;
    RETURN bench_flags.cpu() - c0;
END
$$;
