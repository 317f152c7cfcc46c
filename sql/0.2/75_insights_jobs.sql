-- Insights' periodic jobs for the dispatcher (aura.jobs comes with the
-- notifications part 70, so this part follows it).  Reference: docs/insights.md.

-- run_detectors as one line for the job log
CREATE FUNCTION aura._job_run_detectors() RETURNS text
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
    SELECT format('%s detector runs, %s failed, %s insights', count(*), count(*) FILTER (WHERE NOT ok),
                  coalesce(sum(insights), 0))
      FROM aura.run_detectors(now())
$$;
COMMENT ON FUNCTION aura._job_run_detectors() IS 'Dispatcher job insight_detectors: aura.run_detectors(now()) summarised in one line.';

INSERT INTO aura.jobs (name, fn, every) VALUES
    ('insight_expiry', 'aura.expire_insights', '5 minutes'),
    ('insight_detectors', 'aura._job_run_detectors', '5 minutes');

REVOKE ALL ON FUNCTION aura._job_run_detectors() FROM PUBLIC;
INSERT INTO aura.privilege_matrix (object, kind, role, privileges) VALUES
    ('aura._job_run_detectors()', 'function', '-', '');
