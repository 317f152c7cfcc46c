-- Baseline for test/bench/scenarios/10_settings.sh: the same resolution as
-- aura.get_setting_int (locks first, then user -> location -> restaurant ->
-- system -> default) written in PL/pgSQL over aura's tables, as an
-- application would without aura's cache.
CREATE SCHEMA IF NOT EXISTS bench;
CREATE OR REPLACE FUNCTION bench.plpgsql_get_setting_int(p_key text, p_restaurant bigint,
                                                        p_location bigint, p_user bigint)
    RETURNS bigint
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
    v jsonb;
BEGIN
    -- a locked value at the highest scope wins
    SELECT s.value INTO v FROM aura.system_settings s WHERE s.key = p_key AND s.locked;
    IF FOUND THEN RETURN v::text::bigint; END IF;
    SELECT sv.value INTO v FROM aura.setting_values sv
     WHERE sv.restaurant_id = p_restaurant AND sv.key = p_key AND sv.locked
       AND ((sv.scope = 'restaurant' AND sv.scope_id = p_restaurant) OR (sv.scope = 'location' AND sv.scope_id = p_location))
     ORDER BY sv.scope DESC LIMIT 1;
    IF FOUND THEN RETURN v::text::bigint; END IF;
    -- then the most specific value
    SELECT sv.value INTO v FROM aura.setting_values sv
     WHERE sv.restaurant_id = p_restaurant AND sv.scope = 'user' AND sv.scope_id = p_user AND sv.key = p_key;
    IF FOUND THEN RETURN v::text::bigint; END IF;
    SELECT sv.value INTO v FROM aura.setting_values sv
     WHERE sv.restaurant_id = p_restaurant AND sv.scope = 'location' AND sv.scope_id = p_location AND sv.key = p_key;
    IF FOUND THEN RETURN v::text::bigint; END IF;
    SELECT sv.value INTO v FROM aura.setting_values sv
     WHERE sv.restaurant_id = p_restaurant AND sv.scope = 'restaurant' AND sv.scope_id = p_restaurant AND sv.key = p_key;
    IF FOUND THEN RETURN v::text::bigint; END IF;
    SELECT s.value INTO v FROM aura.system_settings s WHERE s.key = p_key;
    IF FOUND THEN RETURN v::text::bigint; END IF;
    SELECT d.default_value INTO v FROM aura.setting_definitions d WHERE d.key = p_key;
    RETURN v::text::bigint;
END
$$;
