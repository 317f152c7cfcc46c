-- The threading of aura.record_insight written in PL/pgSQL: the baseline of
-- test/bench/scenarios/60_insights.sh.  Same tables, same steps (validate,
-- fingerprint, advisory lock, probe the open thread, dedupe, insert or join
-- a thread with recurrence over its last 8 times, insert, emit the event).
CREATE SCHEMA IF NOT EXISTS bench;

CREATE OR REPLACE FUNCTION bench.record_insight_plpgsql(p_restaurant bigint, p_domain text, p_type text,
    p_severity text, p_title text, p_details jsonb DEFAULT '{}')
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    sevs constant text[] := ARRAY['critical', 'high', 'medium', 'low', 'info'];
    cfg record;
    observed timestamptz := coalesce((p_details ->> 'observed_at')::timestamptz, now());
    etype text := p_details ->> 'related_entity_type';
    eid text := p_details ->> 'related_entity_id';
    value numeric := (p_details ->> 'estimated_value')::numeric;
    fp bigint;
    th aura.insight_threads;
    dup record;
    times timestamptz[];
    gaps double precision[];
    mean double precision;
    mad double precision;
    recurring boolean := false;
    period interval;
    new_sev text;
    new_id bigint;
    k text;
BEGIN
    IF p_domain IS NULL OR p_domain NOT IN ('sales', 'inventory', 'staff', 'customer', 'operations', 'finance', 'marketing', 'loyalty') THEN
        RAISE EXCEPTION 'unknown insight domain "%"', p_domain USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_type IS NULL OR p_type NOT IN ('performance', 'trend', 'anomaly', 'optimization', 'warning', 'opportunity') THEN
        RAISE EXCEPTION 'unknown insight type "%"', p_type USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_severity IS NULL OR NOT p_severity = ANY (sevs) THEN
        RAISE EXCEPTION 'unknown insight severity "%"', p_severity USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_title IS NULL OR btrim(p_title) = '' OR length(p_title) > 300 THEN
        RAISE EXCEPTION 'invalid insight title' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(p_details) <> 'object' THEN
        RAISE EXCEPTION 'insight details must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR k IN SELECT jsonb_object_keys(p_details) LOOP
        IF k NOT IN ('description', 'impact_score', 'estimated_value', 'confidence', 'recommendations', 'metrics',
                     'trend', 'comparison', 'period_start', 'period_end', 'observed_at', 'expires_at', 'location_id',
                     'parent_id', 'related_entity_type', 'related_entity_id', 'generated_by') THEN
            RAISE EXCEPTION 'unknown insight details key "%"', k USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    IF NOT (aura.current_restaurant() = p_restaurant OR aura.is_admin()) THEN
        RAISE EXCEPTION 'restaurant % is not the restaurant in context', p_restaurant USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM 1 FROM aura.restaurants WHERE id = p_restaurant;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'restaurant % does not exist', p_restaurant USING ERRCODE = 'no_data_found';
    END IF;
    cfg := aura.insights_config(p_restaurant);
    fp := hashtextextended(concat_ws(chr(1), p_restaurant, p_type, p_domain, etype, eid), 1634079329);
    PERFORM pg_advisory_xact_lock(fp);

    SELECT * INTO th FROM aura.insight_threads t
     WHERE t.restaurant_id = p_restaurant AND t.fingerprint = fp AND t.status = 'open'
       AND t.type = p_type AND t.domain = p_domain
       AND t.related_entity_type IS NOT DISTINCT FROM etype AND t.related_entity_id IS NOT DISTINCT FROM eid
     ORDER BY t.last_seen DESC LIMIT 1 FOR UPDATE;
    IF FOUND AND observed - th.last_seen > cfg.thread_window THEN
        th := NULL;
    END IF;

    IF th.id IS NOT NULL THEN
        SELECT i.id, i.severity INTO dup FROM aura.insights i
         WHERE i.restaurant_id = p_restaurant AND i.thread_id = th.id
           AND i.last_occurred_at >= observed - cfg.dedupe_window AND i.title = p_title
           AND i.status IN ('active', 'acknowledged', 'in_progress')
         ORDER BY i.last_occurred_at DESC LIMIT 1 FOR UPDATE;
        IF FOUND THEN
            new_sev := CASE WHEN aura._severity_rank(p_severity) > aura._severity_rank(dup.severity)
                            THEN p_severity ELSE dup.severity END;
            UPDATE aura.insights SET occurrence_count = occurrence_count + 1,
                   last_occurred_at = greatest(last_occurred_at, observed), severity = new_sev
             WHERE restaurant_id = p_restaurant AND id = dup.id;
            UPDATE aura.insight_threads SET last_seen = greatest(last_seen, observed),
                   max_severity = CASE WHEN aura._severity_rank(new_sev) > aura._severity_rank(max_severity)
                                       THEN new_sev ELSE max_severity END
             WHERE restaurant_id = p_restaurant AND id = th.id;
            RETURN dup.id;
        END IF;
        SELECT array_agg(x ORDER BY x) INTO times
          FROM (SELECT x FROM unnest(th.recent_seen || observed) x ORDER BY x DESC LIMIT 8) y;
        IF cardinality(times) >= 4 THEN
            SELECT array_agg(extract(epoch FROM times[i] - times[i - 1])) INTO gaps
              FROM generate_series(2, cardinality(times)) i;
            SELECT avg(g) INTO mean FROM unnest(gaps) g;
            SELECT avg(abs(g - mean)) INTO mad FROM unnest(gaps) g;
            recurring := mean > 0 AND mad < 0.2 * mean;
            period := CASE WHEN recurring THEN make_interval(secs => mean) END;
        END IF;
        UPDATE aura.insight_threads SET insight_count = insight_count + 1,
               first_seen = least(first_seen, observed), last_seen = greatest(last_seen, observed),
               max_severity = CASE WHEN aura._severity_rank(p_severity) > aura._severity_rank(max_severity)
                                   THEN p_severity ELSE max_severity END,
               total_estimated_value = total_estimated_value + coalesce(value, 0),
               recent_seen = times, is_recurring = recurring, recurrence_period = period,
               category = aura._thread_category(p_type, recurring, period)
         WHERE restaurant_id = p_restaurant AND id = th.id;
    ELSE
        INSERT INTO aura.insight_threads (restaurant_id, fingerprint, type, domain, related_entity_type,
               related_entity_id, category, insight_count, first_seen, last_seen, max_severity,
               total_estimated_value, recent_seen)
        VALUES (p_restaurant, fp, p_type, p_domain, etype, eid, aura._thread_category(p_type, false, NULL), 1,
                observed, observed, p_severity, coalesce(value, 0), ARRAY[observed])
        RETURNING * INTO th;
    END IF;

    INSERT INTO aura.insights (restaurant_id, location_id, thread_id, domain, type, severity, title, description,
           impact_score, estimated_value, confidence, related_entity_type, related_entity_id, fingerprint,
           generated_by, created_at, last_occurred_at)
    VALUES (p_restaurant, (p_details ->> 'location_id')::bigint, th.id, p_domain, p_type, p_severity, p_title,
            p_details ->> 'description', (p_details ->> 'impact_score')::numeric, value,
            (p_details ->> 'confidence')::numeric, etype, eid, fp, p_details ->> 'generated_by', observed, observed)
    RETURNING id INTO new_id;
    PERFORM aura.emit_event(p_restaurant, 'insight.created',
        jsonb_build_object('insight_id', new_id, 'thread_id', th.id, 'domain', p_domain, 'type', p_type,
                           'severity', p_severity, 'title', p_title, 'occurrence_count', 1));
    RETURN new_id;
END
$$;

-- One timed batch: n recordings over `entities` related entities and 50
-- titles each, the same pseudo-random sequence for every implementation.
-- Returns recordings per second.  Run it inside a transaction that is rolled
-- back, so the table keeps its size.
CREATE OR REPLACE FUNCTION bench.insight_batch(impl text, n integer, entities integer, seed double precision)
    RETURNS double precision
    LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    e integer;
    sevs text[] := ARRAY['critical', 'high', 'medium', 'low', 'info'];
    d jsonb;
    ttl text;
    sev text;
BEGIN
    PERFORM setseed(seed);
    t0 := clock_timestamp();
    FOR i IN 1 .. n LOOP
        e := 1 + floor(random() * entities)::integer;
        ttl := 'Sales drop ' || (1 + floor(random() * 50)::integer);
        sev := sevs[1 + floor(random() * 5)::integer];
        d := jsonb_build_object('related_entity_type', 'location', 'related_entity_id', e,
                                'estimated_value', 10 + (i % 90), 'impact_score', i % 100);
        IF impl = 'c' THEN
            PERFORM aura.record_insight(1, 'sales', 'anomaly', sev, ttl, d);
        ELSE
            PERFORM bench.record_insight_plpgsql(1, 'sales', 'anomaly', sev, ttl, d);
        END IF;
    END LOOP;
    RETURN n / extract(epoch FROM clock_timestamp() - t0);
END
$$;

-- Grow aura.insights of restaurant 1 to `total` rows (threads of 10
-- insights, random fingerprints), bypassing triggers and foreign-key checks.
CREATE OR REPLACE FUNCTION bench.grow_insights(total bigint) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    have bigint;
    add bigint;
    t0 bigint;
BEGIN
    SELECT count(*) INTO have FROM aura.insights;
    add := total - have;
    IF add <= 0 THEN RETURN have; END IF;
    SELECT coalesce(max(id), 0) INTO t0 FROM aura.insight_threads;
    SET LOCAL session_replication_role = replica;
    INSERT INTO aura.insight_threads (restaurant_id, id, fingerprint, type, domain, related_entity_type,
           related_entity_id, category, status, insight_count, first_seen, last_seen, max_severity, recent_seen)
    SELECT 1, t0 + g, (random() * 9e18)::bigint, 'anomaly', 'sales', 'location', 'x' || (t0 + g), 'anomaly_cluster',
           CASE WHEN g % 4 = 0 THEN 'open' ELSE 'closed' END, 10,
           now() - interval '400 days' + g * interval '1 minute', now() - interval '400 days' + g * interval '1 minute',
           'medium', '{}'
      FROM generate_series(1, (add + 9) / 10) g;
    INSERT INTO aura.insights (restaurant_id, thread_id, domain, type, severity, status, title, fingerprint,
           created_at, last_occurred_at, estimated_value, impact_score)
    SELECT 1, t0 + 1 + (g - 1) / 10, 'sales', 'anomaly', (ARRAY['critical', 'high', 'medium', 'low', 'info'])[1 + g % 5],
           CASE WHEN g % 3 = 0 THEN 'active' ELSE 'resolved' END, 'Old finding ' || g, 0,
           now() - interval '400 days' + g * interval '10 seconds', now() - interval '400 days' + g * interval '10 seconds',
           g % 500, g % 100
      FROM generate_series(1, add) g;
    PERFORM setval(pg_get_serial_sequence('aura.insight_threads', 'id'), (SELECT max(id) FROM aura.insight_threads));
    RETURN total;
END
$$;
