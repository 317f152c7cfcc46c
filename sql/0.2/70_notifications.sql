------------------------------------------------------------------------------
-- 70 notifications: channels, webhooks, rules, the outbox, the delivery log,
-- the in-app inbox, periodic jobs and the dispatcher's claim/record functions.
--
-- Messages are rows of aura.notifications written in the transaction that
-- produced the event: a rolled-back event sends nothing.  The dispatcher
-- worker (src/worker.c) claims due rows (FOR UPDATE SKIP LOCKED + lease),
-- commits, sends with libcurl outside any transaction, then records outcomes.
------------------------------------------------------------------------------

------------------------------------------------------------------------------
-- C entry points
------------------------------------------------------------------------------
CREATE FUNCTION aura.webhook_sign(secret text, msg_id text, ts bigint, body text)
    RETURNS text
    LANGUAGE c IMMUTABLE PARALLEL SAFE STRICT
    AS 'MODULE_PATHNAME', 'aura_webhook_sign';
COMMENT ON FUNCTION aura.webhook_sign(text, text, bigint, text) IS
    'Standard Webhooks signature "v1,<base64 HMAC-SHA256(key, msg_id.ts.body)>" for a secret whsec_<base64 key>.';

CREATE FUNCTION aura._new_webhook_secret() RETURNS text
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'aura_new_webhook_secret';
COMMENT ON FUNCTION aura._new_webhook_secret() IS 'A fresh secret: whsec_ + base64 of 32 random bytes.';

CREATE FUNCTION aura._wake_dispatcher() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'aura_wake_dispatcher';
COMMENT ON FUNCTION aura._wake_dispatcher() IS 'Statement trigger: wake the dispatcher when this transaction commits.';

CREATE FUNCTION aura._worker_shmem(OUT pid int, OUT started timestamptz, OUT last_loop timestamptz,
                                   OUT in_flight int, OUT sent bigint, OUT failed bigint,
                                   OUT loops bigint, OUT last_error text)
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'aura_worker_shmem';

------------------------------------------------------------------------------
-- Secrets at rest: sealed (AES-256-GCM, src/crypto.h) with the settings
-- module's master key, like secret settings: one key to manage and rotate.
-- The additional authenticated data binds a sealed secret to its restaurant,
-- so a copy in another restaurant's row does not decrypt.
-- Values sealed by development builds with pgp_sym_encrypt under the GUC
-- aura.notify_secret_key are still read while that GUC is set, and
-- aura.reseal_notification_secrets() (a dispatcher job) re-seals them.
------------------------------------------------------------------------------
CREATE FUNCTION aura._encrypt_secret(plain text, restaurant_id bigint) RETURNS bytea
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
BEGIN
    IF plain IS NULL THEN
        RETURN NULL;
    END IF;
    IF restaurant_id IS NULL THEN
        RAISE EXCEPTION 'restaurant_id must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN aura._seal(plain, 'aura.notify:' || restaurant_id);
END
$$;

DO $do$
DECLARE
    s text := (SELECT quote_ident(extnamespace::regnamespace::text)
                 FROM pg_catalog.pg_extension WHERE extname = 'pgcrypto');
BEGIN
    EXECUTE format($f$
CREATE FUNCTION aura._decrypt_secret(cipher bytea, restaurant_id bigint) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $b$
DECLARE
    k text;
BEGIN
    IF cipher IS NULL OR restaurant_id IS NULL THEN
        RETURN NULL;
    END IF;
    IF aura._sealed_key_id(cipher) IS NOT NULL THEN
        RETURN aura._unseal(cipher, 'aura.notify:' || restaurant_id);
    END IF;
    -- legacy: pgp_sym_encrypt under aura.notify_secret_key
    k := pg_catalog.current_setting('aura.notify_secret_key', true);
    IF k IS NULL OR k = '' THEN
        RETURN NULL;
    END IF;
    RETURN %1$s.pgp_sym_decrypt(cipher, k);
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;    -- key not loaded, wrong restaurant, tampered: the message fails with a clear error
END
$b$$f$, s);
END
$do$;
COMMENT ON FUNCTION aura._encrypt_secret(text, bigint) IS 'Seals a channel or webhook secret of a restaurant with the master key (aura._seal, aad aura.notify:<restaurant_id>).';
COMMENT ON FUNCTION aura._decrypt_secret(bytea, bigint) IS 'Unseals a channel or webhook secret (legacy pgp values with aura.notify_secret_key); NULL when no loaded key opens it.';

------------------------------------------------------------------------------
-- Helpers
------------------------------------------------------------------------------
CREATE FUNCTION aura._check_tenant(p_restaurant bigint) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
BEGIN
    IF p_restaurant IS NULL THEN
        RAISE EXCEPTION 'restaurant_id must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (aura._caller_is_admin() OR p_restaurant IS NOT DISTINCT FROM aura.current_restaurant()) THEN
        RAISE EXCEPTION 'restaurant % is not the restaurant in context', p_restaurant
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('context restaurant: %s', coalesce(aura.current_restaurant()::text, 'none')),
                  HINT = 'Call aura.set_context(restaurant_id) first.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM aura.restaurants WHERE id = p_restaurant) THEN
        RAISE EXCEPTION 'restaurant % does not exist', p_restaurant USING ERRCODE = 'no_data_found';
    END IF;
END
$$;

CREATE FUNCTION aura._context_restaurant() RETURNS bigint
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    r bigint := aura.current_restaurant();
BEGIN
    IF r IS NULL THEN
        RAISE EXCEPTION 'no restaurant in context'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Call aura.set_context(restaurant_id) first.';
    END IF;
    PERFORM aura._check_tenant(r);
    RETURN r;
END
$$;

-- event type patterns: '*', an exact type, or a prefix 'insight.*'
CREATE FUNCTION aura._event_matches(patterns text[], event_type text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT EXISTS (SELECT 1 FROM pg_catalog.unnest(patterns) p
                    WHERE p = '*' OR p = event_type
                       OR (p LIKE '%.*' AND pg_catalog.left(event_type, pg_catalog.length(p) - 1)
                                             = pg_catalog.left(p, pg_catalog.length(p) - 1)))
$$;

CREATE FUNCTION aura._valid_event_patterns(patterns text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT patterns IS NOT NULL AND pg_catalog.cardinality(patterns) BETWEEN 1 AND 100
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(patterns) p
                        WHERE p IS NULL OR NOT (p = '*' OR p ~ '^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?$')
                           OR pg_catalog.length(p) > 100)
$$;

-- aura._severity_rank(text) comes from the insights part: info 1 .. critical 5.

CREATE FUNCTION aura._valid_http_url(u text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT u IS NOT NULL AND pg_catalog.length(u) <= 2048 AND u ~ '^https?://[^/\s?#@]+' AND u !~ '\s'
$$;

-- append-only tables: UPDATE never, DELETE only by retention of old rows
CREATE FUNCTION aura._reject_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.at < now() - pg_catalog.make_interval(days => aura._retention_days()) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME
        USING ERRCODE = 'object_not_in_prerequisite_state',
              DETAIL = format('%s of row %s refused', TG_OP, OLD.id),
              HINT = 'Rows older than the retention period are removed by aura.cleanup_notifications().';
END
$$;

CREATE FUNCTION aura._retention_days() RETURNS int
    LANGUAGE sql STABLE
    AS $$ SELECT pg_catalog.current_setting('aura.notification_retention_days')::int $$;

------------------------------------------------------------------------------
-- Channels (per restaurant; secrets encrypted).  Later read from settings.
------------------------------------------------------------------------------
CREATE TABLE aura.notification_channels (
    restaurant_id  bigint NOT NULL REFERENCES aura.restaurants (id),
    id             bigint GENERATED BY DEFAULT AS IDENTITY,
    name           text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    channel        text NOT NULL CHECK (channel IN ('email', 'slack', 'webhook', 'sms', 'in_app')),
    config         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    secret         bytea,
    enabled        boolean NOT NULL DEFAULT true,
    disabled_reason text,
    last_success_at timestamptz,
    last_failure_at timestamptz,
    failure_count  int NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, id),
    UNIQUE (restaurant_id, name)
);
COMMENT ON TABLE aura.notification_channels IS 'Notification channels of a restaurant: config holds non-secret fields, secret the encrypted credential (Slack URL, SMTP password, Twilio token, webhook secret).';
SELECT aura._register_tenant_table('aura.notification_channels');

-- validate a channel's config; returns the normalised config
CREATE FUNCTION aura._check_channel_config(p_channel text, p_config jsonb, p_has_secret boolean)
    RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    k text;
    allowed text[];
BEGIN
    IF p_config IS NULL OR jsonb_typeof(p_config) <> 'object' THEN
        RAISE EXCEPTION 'channel config must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('got: %s', left(coalesce(p_config::text, 'NULL'), 100));
    END IF;
    allowed := CASE p_channel
        WHEN 'email' THEN ARRAY['host', 'port', 'tls', 'username', 'from']
        WHEN 'slack' THEN ARRAY[]::text[]
        WHEN 'webhook' THEN ARRAY['url']
        WHEN 'sms' THEN ARRAY['base_url', 'account_sid', 'from']
        WHEN 'in_app' THEN ARRAY[]::text[] END;
    IF allowed IS NULL THEN
        RAISE EXCEPTION 'unknown channel type "%"', left(coalesce(p_channel, 'NULL'), 50)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use email, slack, webhook, sms or in_app.';
    END IF;
    FOR k IN SELECT jsonb_object_keys(p_config) LOOP
        IF NOT k = ANY (allowed) THEN
            RAISE EXCEPTION 'unknown config key "%" for a % channel', left(k, 50), p_channel
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = format('Allowed keys: %s (secrets go in the secret argument).', array_to_string(allowed, ', '));
        END IF;
        IF jsonb_typeof(p_config -> k) NOT IN ('string', 'number') THEN
            RAISE EXCEPTION 'config key "%" must be a string or number', k USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    IF p_channel = 'email' THEN
        IF coalesce(p_config ->> 'host', '') !~ '^[A-Za-z0-9.-]{1,253}$' THEN
            RAISE EXCEPTION 'email channel needs a valid host' USING ERRCODE = 'invalid_parameter_value',
                DETAIL = format('host: %s', left(coalesce(p_config ->> 'host', 'NULL'), 100));
        END IF;
        IF coalesce(p_config ->> 'port', '25') !~ '^[0-9]{1,5}$' OR (p_config ->> 'port')::int NOT BETWEEN 1 AND 65535 THEN
            RAISE EXCEPTION 'email port must be between 1 and 65535' USING ERRCODE = 'invalid_parameter_value',
                DETAIL = format('port: %s', p_config ->> 'port');
        END IF;
        IF coalesce(p_config ->> 'tls', 'starttls') NOT IN ('starttls', 'none', 'implicit') THEN
            RAISE EXCEPTION 'email tls must be starttls, none or implicit' USING ERRCODE = 'invalid_parameter_value',
                DETAIL = format('tls: %s', left(p_config ->> 'tls', 50));
        END IF;
        IF coalesce(p_config ->> 'from', '') !~ '^[^\s<>@,;"]+@[^\s<>@,;"]+$' THEN
            RAISE EXCEPTION 'email channel needs a valid from address' USING ERRCODE = 'invalid_parameter_value',
                DETAIL = format('from: %s', left(coalesce(p_config ->> 'from', 'NULL'), 100));
        END IF;
    ELSIF p_channel = 'slack' THEN
        IF NOT p_has_secret THEN
            RAISE EXCEPTION 'a slack channel needs its incoming webhook URL' USING ERRCODE = 'invalid_parameter_value',
                HINT = 'Set the secret setting notifications.slack.webhook_url of the restaurant, or pass the URL as the secret.';
        END IF;
    ELSIF p_channel = 'webhook' THEN
        IF NOT aura._valid_http_url(p_config ->> 'url') THEN
            RAISE EXCEPTION 'webhook channel needs an http or https url' USING ERRCODE = 'invalid_parameter_value',
                DETAIL = format('url: %s', left(coalesce(p_config ->> 'url', 'NULL'), 200));
        END IF;
    ELSIF p_channel = 'sms' THEN
        IF NOT aura._valid_http_url(coalesce(p_config ->> 'base_url', 'https://api.twilio.com')) THEN
            RAISE EXCEPTION 'sms base_url must be an http or https url' USING ERRCODE = 'invalid_parameter_value',
                DETAIL = format('base_url: %s', left(p_config ->> 'base_url', 200));
        END IF;
        IF coalesce(p_config ->> 'account_sid', '') !~ '^[A-Za-z0-9]{1,64}$' OR coalesce(p_config ->> 'from', '') !~ '^\+?[0-9A-Za-z]{2,20}$' THEN
            RAISE EXCEPTION 'sms channel needs account_sid and from' USING ERRCODE = 'invalid_parameter_value',
                DETAIL = format('account_sid: %s, from: %s', left(p_config ->> 'account_sid', 64), left(p_config ->> 'from', 30));
        END IF;
        IF NOT p_has_secret THEN
            RAISE EXCEPTION 'an sms channel needs the auth token' USING ERRCODE = 'invalid_parameter_value',
                HINT = 'Set the secret setting notifications.sms.auth_token of the restaurant, or pass the token as the secret.';
        END IF;
    END IF;
    RETURN p_config;
END
$$;

-- The restaurant's notifications.* settings as channel config (keys of
-- _check_channel_config); the channel's own config overrides them.
CREATE FUNCTION aura._channel_settings(p_channel text, p_restaurant bigint) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
    SELECT CASE p_channel
        WHEN 'email' THEN jsonb_strip_nulls(jsonb_build_object(
            'host', aura.get_setting_text('notifications.email.smtp_host', p_restaurant, 0, 0),
            'port', aura.get_setting_int('notifications.email.smtp_port', p_restaurant, 0, 0),
            'tls', CASE aura.get_setting_text('notifications.email.smtp_tls', p_restaurant, 0, 0)
                       WHEN 'tls' THEN 'implicit' ELSE aura.get_setting_text('notifications.email.smtp_tls', p_restaurant, 0, 0) END,
            'username', aura.get_setting_text('notifications.email.username', p_restaurant, 0, 0),
            'from', aura.get_setting_text('notifications.email.from', p_restaurant, 0, 0)))
        WHEN 'sms' THEN jsonb_strip_nulls(jsonb_build_object(
            'base_url', aura.get_setting_text('notifications.sms.base_url', p_restaurant, 0, 0),
            'account_sid', aura.get_setting_text('notifications.sms.account_sid', p_restaurant, 0, 0),
            'from', aura.get_setting_text('notifications.sms.from', p_restaurant, 0, 0)))
        ELSE '{}'::jsonb END
$$;

-- the secret setting of a channel type (email password, Slack URL, SMS token)
CREATE FUNCTION aura._channel_secret_key(p_channel text) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT CASE p_channel WHEN 'email' THEN 'notifications.email.password'
                          WHEN 'slack' THEN 'notifications.slack.webhook_url'
                          WHEN 'sms' THEN 'notifications.sms.auth_token' END
$$;

-- plaintext of a notifications.* secret setting of a restaurant (src/notify.c); dispatcher only
CREATE FUNCTION aura._channel_setting_secret(key text, restaurant_id bigint) RETURNS text
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'aura_channel_setting_secret';

CREATE FUNCTION aura.set_notification_channel(name text, channel text, config jsonb DEFAULT '{}',
                                              secret text DEFAULT NULL, enabled boolean DEFAULT true)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    r bigint := aura._context_restaurant();
    cid bigint;
    enc bytea;
    effective jsonb;
    has_secret boolean;
BEGIN
    IF name IS NULL OR length(btrim(name)) NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'channel name must have 1 to 100 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF secret IS NOT NULL AND (length(secret) = 0 OR length(secret) > 4096) THEN
        RAISE EXCEPTION 'secret must have 1 to 4096 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF channel = 'slack' AND secret IS NOT NULL AND NOT aura._valid_http_url(secret) THEN
        RAISE EXCEPTION 'the slack secret must be the incoming webhook URL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT c.id, c.secret INTO cid, enc FROM aura.notification_channels c
     WHERE c.restaurant_id = r AND c.name = set_notification_channel.name;
    -- validated as the dispatcher will use it: the restaurant's settings, overridden by
    -- the channel's own config (stored as given, so later settings changes apply)
    effective := CASE WHEN jsonb_typeof(config) = 'object' AND channel IN ('email', 'sms')
                      THEN aura._channel_settings(channel, r) || config ELSE coalesce(config, 'null'::jsonb) END;
    has_secret := secret IS NOT NULL OR enc IS NOT NULL
                  OR (aura._channel_secret_key(channel) IS NOT NULL
                      AND aura.get_setting(aura._channel_secret_key(channel), r, 0, 0) IS NOT NULL);
    effective := aura._check_channel_config(channel, effective, has_secret);
    IF secret IS NOT NULL THEN
        enc := aura._encrypt_secret(secret, r);
    END IF;
    IF cid IS NULL THEN
        INSERT INTO aura.notification_channels (restaurant_id, name, channel, config, secret, enabled)
        VALUES (r, set_notification_channel.name, channel, config, enc, coalesce(enabled, true))
        RETURNING id INTO cid;
    ELSE
        UPDATE aura.notification_channels c
           SET channel = set_notification_channel.channel, config = set_notification_channel.config,
               secret = enc, enabled = coalesce(set_notification_channel.enabled, true),
               disabled_reason = NULL, failure_count = 0
         WHERE c.restaurant_id = r AND c.id = cid;
    END IF;
    RETURN cid;
END
$$;
COMMENT ON FUNCTION aura.set_notification_channel(text, text, jsonb, text, boolean) IS
    'Creates or replaces a notification channel of the restaurant in context; the secret is stored encrypted.';

------------------------------------------------------------------------------
-- Webhook subscriptions
------------------------------------------------------------------------------
CREATE TABLE aura.webhooks (
    restaurant_id  bigint NOT NULL REFERENCES aura.restaurants (id),
    id             bigint GENERATED BY DEFAULT AS IDENTITY,
    name           text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    url            text NOT NULL CHECK (aura._valid_http_url(url)),
    events         text[] NOT NULL DEFAULT '{*}' CHECK (aura._valid_event_patterns(events)),
    secret         bytea NOT NULL,
    previous_secret bytea,
    previous_secret_until timestamptz,
    headers        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(headers) = 'object'),
    max_retries    int NOT NULL DEFAULT 7 CHECK (max_retries BETWEEN 0 AND 10),
    timeout_ms     int NOT NULL DEFAULT 10000 CHECK (timeout_ms BETWEEN 100 AND 60000),
    active         boolean NOT NULL DEFAULT true,
    disabled_reason text,
    last_success_at timestamptz,
    last_failure_at timestamptz,
    failure_count  int NOT NULL DEFAULT 0,
    verified_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, id),
    UNIQUE (restaurant_id, name)
);
COMMENT ON TABLE aura.webhooks IS 'Webhook subscriptions: events (patterns) delivered as signed Standard Webhooks POSTs to url.';
SELECT aura._register_tenant_table('aura.webhooks');

CREATE FUNCTION aura._check_webhook_headers(h jsonb) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    k text;
BEGIN
    IF h IS NULL OR jsonb_typeof(h) <> 'object' THEN
        RAISE EXCEPTION 'headers must be a JSON object of strings' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT count(*) FROM jsonb_object_keys(h)) > 20 THEN
        RAISE EXCEPTION 'at most 20 extra headers' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR k IN SELECT jsonb_object_keys(h) LOOP
        IF k !~ '^[A-Za-z0-9-]{1,64}$' OR jsonb_typeof(h -> k) <> 'string'
           OR (h ->> k) ~ '[\r\n\x00]' OR length(h ->> k) > 1024 THEN
            RAISE EXCEPTION 'invalid header "%"', left(k, 64)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Header names are letters, digits and dashes; values single-line strings up to 1024 characters.';
        END IF;
        IF lower(k) IN ('host', 'content-length', 'content-type', 'transfer-encoding', 'connection',
                        'webhook-id', 'webhook-timestamp', 'webhook-signature') THEN
            RAISE EXCEPTION 'header "%" is set by aura', k USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
END
$$;

CREATE FUNCTION aura.create_webhook(name text, url text, events text[] DEFAULT '{*}',
                                    headers jsonb DEFAULT '{}', max_retries int DEFAULT 7,
                                    timeout_ms int DEFAULT 10000,
                                    OUT id bigint, OUT secret text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    r bigint := aura._context_restaurant();
BEGIN
    IF name IS NULL OR length(btrim(name)) NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'webhook name must have 1 to 100 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT aura._valid_http_url(url) THEN
        RAISE EXCEPTION 'invalid webhook url' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('url: %s', left(coalesce(url, 'NULL'), 200)),
            HINT = 'Use an absolute http:// or https:// URL without spaces, up to 2048 characters.';
    END IF;
    IF NOT aura._valid_event_patterns(events) THEN
        RAISE EXCEPTION 'invalid event patterns' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('events: %s', left(coalesce(events::text, 'NULL'), 200)),
            HINT = 'Use ''*'', exact types like ''reward.issued'' or prefixes like ''insight.*''.';
    END IF;
    PERFORM aura._check_webhook_headers(headers);
    IF max_retries IS NULL OR max_retries NOT BETWEEN 0 AND 10 THEN
        RAISE EXCEPTION 'max_retries must be between 0 and 10' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('max_retries: %s', max_retries);
    END IF;
    IF timeout_ms IS NULL OR timeout_ms NOT BETWEEN 100 AND 60000 THEN
        RAISE EXCEPTION 'timeout_ms must be between 100 and 60000' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('timeout_ms: %s', timeout_ms);
    END IF;
    IF EXISTS (SELECT 1 FROM aura.webhooks w WHERE w.restaurant_id = r AND w.name = create_webhook.name) THEN
        RAISE EXCEPTION 'webhook "%" exists already', left(name, 100) USING ERRCODE = 'unique_violation';
    END IF;
    secret := aura._new_webhook_secret();
    INSERT INTO aura.webhooks (restaurant_id, name, url, events, secret, headers, max_retries, timeout_ms)
    VALUES (r, create_webhook.name, url, events, aura._encrypt_secret(secret, r), headers, max_retries, timeout_ms)
    RETURNING webhooks.id INTO id;
END
$$;
COMMENT ON FUNCTION aura.create_webhook(text, text, text[], jsonb, int, int) IS
    'Subscribes a URL to events of the restaurant in context; returns the id and the signing secret (shown once).';

CREATE FUNCTION aura.rotate_webhook_secret(webhook_id bigint, overlap interval DEFAULT '24 hours')
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    r bigint := aura._context_restaurant();
    s text := aura._new_webhook_secret();
BEGIN
    IF overlap IS NULL OR overlap < '0' OR overlap > '30 days' THEN
        RAISE EXCEPTION 'overlap must be between 0 and 30 days' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('overlap: %s', overlap);
    END IF;
    UPDATE aura.webhooks w
       SET previous_secret = w.secret, previous_secret_until = now() + overlap,
           secret = aura._encrypt_secret(s, r)
     WHERE w.restaurant_id = r AND w.id = webhook_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhook % does not exist', webhook_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN s;
END
$$;
COMMENT ON FUNCTION aura.rotate_webhook_secret(bigint, interval) IS
    'New signing secret; during the overlap messages carry signatures with the old and the new secret.';

------------------------------------------------------------------------------
-- Rules
------------------------------------------------------------------------------
CREATE TABLE aura.notification_rules (
    restaurant_id  bigint NOT NULL REFERENCES aura.restaurants (id),
    id             bigint GENERATED BY DEFAULT AS IDENTITY,
    name           text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    event_types    text[] NOT NULL DEFAULT '{*}' CHECK (aura._valid_event_patterns(event_types)),
    min_severity   text NOT NULL DEFAULT 'info' CHECK (aura._severity_rank(min_severity) IS NOT NULL),
    insight_domains text[] NOT NULL DEFAULT '{}' CHECK (cardinality(insight_domains) <= 20),
    insight_types  text[] NOT NULL DEFAULT '{}' CHECK (cardinality(insight_types) <= 50),
    min_impact     numeric CHECK (min_impact >= 0),
    min_value      numeric(14,2),
    targets        jsonb NOT NULL CHECK (jsonb_typeof(targets) = 'array'),
    digest_hours   int[] NOT NULL DEFAULT '{}' CHECK (digest_hours <@ ARRAY[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23]),
    max_per_hour   int CHECK (max_per_hour > 0),
    max_per_day    int CHECK (max_per_day > 0),
    quiet_start    time,
    quiet_end      time,
    dedupe_window  interval NOT NULL DEFAULT '0' CHECK (dedupe_window >= '0' AND dedupe_window <= '7 days'),
    enabled        boolean NOT NULL DEFAULT true,
    last_digest_at timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, id),
    UNIQUE (restaurant_id, name),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);
COMMENT ON TABLE aura.notification_rules IS 'Which events reach which channels and recipients: severity, insight domain/type, impact and value filters, immediate or digest, rate limits, quiet hours, dedupe.';
SELECT aura._register_tenant_table('aura.notification_rules');

-- every event a rule matched: sent immediately, or waiting for / included in a digest
CREATE TABLE aura.rule_matches (
    restaurant_id  bigint NOT NULL,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    rule_id        bigint NOT NULL,
    event_type     text NOT NULL,
    data           jsonb NOT NULL,
    dedupe_key     text NOT NULL,
    mode           text NOT NULL CHECK (mode IN ('immediate', 'digest', 'deduped')),
    reason         text,
    digested_at    timestamptz,
    at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, id),
    FOREIGN KEY (restaurant_id, rule_id) REFERENCES aura.notification_rules (restaurant_id, id) ON DELETE CASCADE
);
CREATE INDEX rule_matches_window ON aura.rule_matches (restaurant_id, rule_id, at);
CREATE INDEX rule_matches_pending ON aura.rule_matches (restaurant_id, rule_id) WHERE mode = 'digest' AND digested_at IS NULL;
SELECT aura._register_tenant_table('aura.rule_matches');

CREATE FUNCTION aura._check_targets(t jsonb, r bigint) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    e jsonb;
BEGIN
    IF t IS NULL OR jsonb_typeof(t) <> 'array' OR jsonb_array_length(t) NOT BETWEEN 1 AND 20 THEN
        RAISE EXCEPTION 'targets must be a JSON array of 1 to 20 {"channel": name, "recipients": [...]} objects'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('got: %s', left(coalesce(t::text, 'NULL'), 200));
    END IF;
    FOR e IN SELECT jsonb_array_elements(t) LOOP
        IF jsonb_typeof(e) <> 'object' OR jsonb_typeof(e -> 'channel') <> 'string'
           OR (e ? 'recipients' AND (jsonb_typeof(e -> 'recipients') <> 'array'
               OR jsonb_array_length(e -> 'recipients') > 100
               OR EXISTS (SELECT 1 FROM jsonb_array_elements(e -> 'recipients') x
                           WHERE jsonb_typeof(x) <> 'string' OR length(x #>> '{}') NOT BETWEEN 1 AND 254))) THEN
            RAISE EXCEPTION 'invalid target %', left(e::text, 200)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Each target is {"channel": "<channel name>", "recipients": ["..."]}.';
        END IF;
    END LOOP;
END
$$;

CREATE FUNCTION aura.set_notification_rule(name text, event_types text[], targets jsonb,
                                           min_severity text DEFAULT 'info',
                                           digest_hours int[] DEFAULT '{}',
                                           max_per_hour int DEFAULT NULL, max_per_day int DEFAULT NULL,
                                           quiet_start time DEFAULT NULL, quiet_end time DEFAULT NULL,
                                           dedupe_window interval DEFAULT '0', enabled boolean DEFAULT true,
                                           insight_domains text[] DEFAULT '{}', insight_types text[] DEFAULT '{}',
                                           min_impact numeric DEFAULT NULL, min_value numeric DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    r bigint := aura._context_restaurant();
    rid bigint;
BEGIN
    IF name IS NULL OR length(btrim(name)) NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'rule name must have 1 to 100 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT aura._valid_event_patterns(event_types) THEN
        RAISE EXCEPTION 'invalid event patterns' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('event_types: %s', left(coalesce(event_types::text, 'NULL'), 200));
    END IF;
    IF aura._severity_rank(min_severity) IS NULL THEN
        RAISE EXCEPTION 'unknown severity "%"', left(coalesce(min_severity, 'NULL'), 50)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use info, low, medium, high or critical.';
    END IF;
    PERFORM aura._check_targets(targets, r);
    IF insight_domains IS NULL OR cardinality(insight_domains) > 20 OR array_position(insight_domains, NULL) IS NOT NULL
       OR EXISTS (SELECT 1 FROM unnest(insight_domains) d WHERE d !~ '^[a-z][a-z0-9_]{0,49}$') THEN
        RAISE EXCEPTION 'insight domains must be up to 20 lower-case names' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('insight_domains: %s', left(coalesce(insight_domains::text, 'NULL'), 200)),
            HINT = 'For example {sales,labor}; an empty array matches every domain.';
    END IF;
    IF insight_types IS NULL OR cardinality(insight_types) > 50 OR array_position(insight_types, NULL) IS NOT NULL
       OR EXISTS (SELECT 1 FROM unnest(insight_types) d WHERE d !~ '^[a-z][a-z0-9_]{0,49}$') THEN
        RAISE EXCEPTION 'insight types must be up to 50 lower-case names' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('insight_types: %s', left(coalesce(insight_types::text, 'NULL'), 200)),
            HINT = 'For example {anomaly,trend}; an empty array matches every type.';
    END IF;
    IF min_impact < 0 OR min_impact > 1000000 THEN
        RAISE EXCEPTION 'minimum impact must be between 0 and 1000000' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('min_impact: %s', min_impact);
    END IF;
    IF abs(min_value) >= 1e12 THEN
        RAISE EXCEPTION 'minimum value out of range' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('min_value: %s', min_value);
    END IF;
    IF digest_hours IS NULL OR array_position(digest_hours, NULL) IS NOT NULL
       OR NOT digest_hours <@ ARRAY[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23] THEN
        RAISE EXCEPTION 'digest hours must be hours of the day 0 to 23' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('digest_hours: %s', digest_hours);
    END IF;
    IF max_per_hour <= 0 OR max_per_day <= 0 THEN
        RAISE EXCEPTION 'rate limits must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (quiet_start IS NULL) <> (quiet_end IS NULL) THEN
        RAISE EXCEPTION 'quiet hours need both start and end' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF dedupe_window IS NULL OR dedupe_window < '0' OR dedupe_window > '7 days' THEN
        RAISE EXCEPTION 'dedupe window must be between 0 and 7 days' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('dedupe_window: %s', dedupe_window);
    END IF;
    INSERT INTO aura.notification_rules AS nr (restaurant_id, name, event_types, min_severity, targets, digest_hours,
                                         max_per_hour, max_per_day, quiet_start, quiet_end, dedupe_window, enabled,
                                         insight_domains, insight_types, min_impact, min_value)
    VALUES (r, name, event_types, min_severity, targets, digest_hours, max_per_hour, max_per_day,
            quiet_start, quiet_end, dedupe_window, coalesce(enabled, true),
            insight_domains, insight_types, min_impact, min_value)
    ON CONFLICT ON CONSTRAINT notification_rules_restaurant_id_name_key DO UPDATE
       SET event_types = EXCLUDED.event_types, min_severity = EXCLUDED.min_severity, targets = EXCLUDED.targets,
           digest_hours = EXCLUDED.digest_hours, max_per_hour = EXCLUDED.max_per_hour,
           max_per_day = EXCLUDED.max_per_day, quiet_start = EXCLUDED.quiet_start, quiet_end = EXCLUDED.quiet_end,
           dedupe_window = EXCLUDED.dedupe_window, enabled = EXCLUDED.enabled,
           insight_domains = EXCLUDED.insight_domains, insight_types = EXCLUDED.insight_types,
           min_impact = EXCLUDED.min_impact, min_value = EXCLUDED.min_value
    RETURNING nr.id INTO rid;
    RETURN rid;
END
$$;
COMMENT ON FUNCTION aura.set_notification_rule(text, text[], jsonb, text, int[], int, int, time, time, interval, boolean, text[], text[], numeric, numeric) IS
    'Creates or replaces a notification rule of the restaurant in context.';

------------------------------------------------------------------------------
-- The outbox and the delivery log
------------------------------------------------------------------------------
CREATE TABLE aura.notifications (
    restaurant_id  bigint NOT NULL,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    msg_id         text NOT NULL,
    event_type     text NOT NULL,
    channel        text NOT NULL CHECK (channel IN ('email', 'slack', 'webhook', 'sms', 'in_app')),
    webhook_id     bigint,
    channel_id     bigint,
    rule_id        bigint,
    recipient      text,
    payload        jsonb NOT NULL,
    status         text NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'sending', 'delivered', 'failed', 'dead')),
    attempts       int NOT NULL DEFAULT 0,
    max_attempts   int NOT NULL DEFAULT 8 CHECK (max_attempts BETWEEN 1 AND 11),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until    timestamptz,
    last_error     text,
    response_code  int,
    latency_ms     int,
    created_at     timestamptz NOT NULL DEFAULT now(),
    delivered_at   timestamptz,
    PRIMARY KEY (restaurant_id, id)
);
COMMENT ON TABLE aura.notifications IS 'Outbox: one row per message and recipient, written in the transaction of the event; status queued | sending | delivered | failed (will retry) | dead.';
CREATE INDEX notifications_due ON aura.notifications (next_attempt_at) WHERE status IN ('queued', 'failed');
CREATE INDEX notifications_lease ON aura.notifications (lease_until) WHERE status = 'sending';
SELECT aura._register_tenant_table('aura.notifications');
CREATE TRIGGER wake_dispatcher AFTER INSERT OR UPDATE OF status ON aura.notifications
    FOR EACH STATEMENT EXECUTE FUNCTION aura._wake_dispatcher();

CREATE TABLE aura.delivery_log (
    restaurant_id  bigint NOT NULL,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    notification_id bigint NOT NULL,
    msg_id         text NOT NULL,
    attempt        int NOT NULL,
    outcome        text NOT NULL CHECK (outcome IN ('delivered', 'failed', 'dead', 'released')),
    response_code  int,
    latency_ms     int,
    error          text,
    at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, id)
);
COMMENT ON TABLE aura.delivery_log IS 'Append-only: one row per delivery attempt.';
CREATE INDEX delivery_log_notification ON aura.delivery_log (restaurant_id, notification_id);
-- no index on "at": one index insert fewer per attempt; the hourly retention scans the log
SELECT aura._register_tenant_table('aura.delivery_log');
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON aura.delivery_log
    FOR EACH ROW EXECUTE FUNCTION aura._reject_change();

CREATE TABLE aura.inbox (
    restaurant_id  bigint NOT NULL,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    user_id        bigint NOT NULL,
    msg_id         text NOT NULL,
    event_type     text NOT NULL,
    severity       text NOT NULL,
    title          text NOT NULL,
    body           text NOT NULL,
    data           jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    read_at        timestamptz,
    PRIMARY KEY (restaurant_id, id)
);
COMMENT ON TABLE aura.inbox IS 'In-app notifications per application user.';
CREATE INDEX inbox_user ON aura.inbox (restaurant_id, user_id, created_at DESC);
SELECT aura._register_tenant_table('aura.inbox');

------------------------------------------------------------------------------
-- Periodic jobs run by the dispatcher, each in its own transaction
------------------------------------------------------------------------------
CREATE TABLE aura.jobs (
    name           text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    -- by name, not regproc: pg_upgrade refuses regproc columns
    fn             text NOT NULL CHECK (fn ~ '^aura\.[a-z_][a-z0-9_]*$'),
    every          interval NOT NULL CHECK (every >= '1 second'),
    enabled        boolean NOT NULL DEFAULT true,
    next_run_at    timestamptz NOT NULL DEFAULT now(),
    last_run_at    timestamptz,
    last_ok        boolean,
    last_error     text,
    last_result    text,
    runs           bigint NOT NULL DEFAULT 0,
    failures       bigint NOT NULL DEFAULT 0
);
ALTER TABLE aura.jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE aura.jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY jobs_admin ON aura.jobs USING (true) WITH CHECK (aura.is_admin());
COMMENT ON TABLE aura.jobs IS 'Periodic jobs of every module, run by the dispatcher: fn() is called every interval, each run in its own transaction; failures are recorded and the loop continues.';

------------------------------------------------------------------------------
-- Rendering: the text of a message for humans
------------------------------------------------------------------------------
CREATE FUNCTION aura._event_title(event_type text, data jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT left(coalesce(nullif(data ->> 'title', ''), initcap(replace(replace(event_type, '.', ' '), '_', ' '))), 200) $$;

CREATE FUNCTION aura._event_severity(data jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE WHEN aura._severity_rank(data ->> 'severity') IS NOT NULL THEN data ->> 'severity' ELSE 'info' END $$;

CREATE FUNCTION aura._event_text(event_type text, data jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT left(concat_ws(E'\n',
        coalesce(data ->> 'description', data ->> 'message'),
        CASE WHEN data ? 'impact' THEN 'Impact: ' || (data ->> 'impact') END,
        CASE WHEN data ? 'value' THEN 'Value: ' || (data ->> 'value') END,
        CASE WHEN jsonb_typeof(data -> 'recommendations') = 'array' THEN
            (SELECT string_agg('- ' || (x #>> '{}'), E'\n')
               FROM (SELECT x FROM jsonb_array_elements(data -> 'recommendations') x LIMIT 5) s) END,
        CASE WHEN data ? 'items' AND jsonb_typeof(data -> 'items') = 'array' THEN
            (SELECT string_agg('- ' || (x ->> 'type') || ': ' || aura._event_title(x ->> 'type', x -> 'data'), E'\n')
               FROM (SELECT x FROM jsonb_array_elements(data -> 'items') x LIMIT 50) s) END,
        CASE WHEN data ? 'url' THEN data ->> 'url' END), 4000)
$$;

CREATE FUNCTION aura._slack_blocks(event_type text, data jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT jsonb_build_object(
        'text', format('[%s] %s', upper(aura._event_severity(data)), aura._event_title(event_type, data)),
        'blocks', jsonb_build_array(
            jsonb_build_object('type', 'header', 'text', jsonb_build_object('type', 'plain_text',
                'text', left(format('[%s] %s', upper(aura._event_severity(data)), aura._event_title(event_type, data)), 150))),
            jsonb_build_object('type', 'section', 'text', jsonb_build_object('type', 'mrkdwn',
                'text', left(coalesce(data ->> 'description', data ->> 'message', aura._event_text(event_type, data), ' '), 3000))),
            jsonb_build_object('type', 'context', 'elements', jsonb_build_array(jsonb_build_object('type', 'mrkdwn',
                'text', format('%s · %s', event_type, coalesce(data ->> 'domain', 'aura')))))
        ) || CASE WHEN data ? 'impact' OR data ? 'value' THEN jsonb_build_array(jsonb_build_object('type', 'section',
                'fields', (SELECT jsonb_agg(f) FROM (
                    SELECT jsonb_build_object('type', 'mrkdwn', 'text', '*Impact*' || E'\n' || (data ->> 'impact')) f WHERE data ? 'impact'
                    UNION ALL
                    SELECT jsonb_build_object('type', 'mrkdwn', 'text', '*Value*' || E'\n' || (data ->> 'value')) WHERE data ? 'value') s)))
             ELSE '[]' END
          || CASE WHEN jsonb_typeof(data -> 'recommendations') = 'array' AND jsonb_array_length(data -> 'recommendations') > 0 THEN
                jsonb_build_array(jsonb_build_object('type', 'section', 'text', jsonb_build_object('type', 'mrkdwn',
                    'text', (SELECT string_agg('• ' || (x #>> '{}'), E'\n')
                               FROM (SELECT x FROM jsonb_array_elements(data -> 'recommendations') x LIMIT 5) s))))
             ELSE '[]' END
          || CASE WHEN data ->> 'url' ~ '^https?://' THEN jsonb_build_array(jsonb_build_object('type', 'actions',
                'elements', jsonb_build_array(jsonb_build_object('type', 'button',
                    'text', jsonb_build_object('type', 'plain_text', 'text', 'Open'), 'url', data ->> 'url'))))
             ELSE '[]' END)
$$;

-- an RFC 5322 message with text and HTML parts
CREATE FUNCTION aura._email_message(p_from text, p_to text, msg_id text, event_type text, data jsonb)
    RETURNS text
    LANGUAGE sql STABLE
    AS $$
    WITH m AS (
        SELECT format('[%s] %s', upper(aura._event_severity(data)), aura._event_title(event_type, data)) AS subject,
               aura._event_text(event_type, data) AS body,
               'aura-' || md5(msg_id) AS boundary)
    SELECT concat(
        'From: ', p_from, E'\r\n',
        'To: ', p_to, E'\r\n',
        -- RFC 2047 encoded word keeps any subject safe in a header
        'Subject: =?UTF-8?B?', translate(encode(convert_to(m.subject, 'UTF8'), 'base64'), E'\n', ''), E'?=\r\n',
        'Date: ', to_char(now() AT TIME ZONE 'UTC', 'Dy, DD Mon YYYY HH24:MI:SS'), E' +0000\r\n',
        'Message-ID: <', msg_id, E'@aura>\r\n',
        E'MIME-Version: 1.0\r\n',
        'Content-Type: multipart/alternative; boundary="', m.boundary, E'"\r\n',
        E'\r\n',
        '--', m.boundary, E'\r\n',
        E'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n',
        encode(convert_to(m.subject || E'\n\n' || m.body, 'UTF8'), 'base64'), E'\r\n',
        '--', m.boundary, E'\r\n',
        E'Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n',
        encode(convert_to('<html><body><h2>' || replace(replace(replace(m.subject, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')
                          || '</h2><p>' || replace(replace(replace(replace(m.body, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), E'\n', '<br>')
                          || '</p></body></html>', 'UTF8'), 'base64'), E'\r\n',
        '--', m.boundary, E'--\r\n')
      FROM m
$$;

------------------------------------------------------------------------------
-- Events API
------------------------------------------------------------------------------
CREATE SEQUENCE aura.events_id_seq;

-- queue the messages of one rule match (immediate) for every target
CREATE FUNCTION aura._queue_rule_targets(p_restaurant bigint, p_rule aura.notification_rules, p_event_type text,
                                         p_data jsonb, p_not_before timestamptz)
    RETURNS int
    LANGUAGE plpgsql
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    t jsonb;
    ch aura.notification_channels;
    rcpt text;
    n int := 0;
    nid bigint;
    payload jsonb := jsonb_build_object('type', p_event_type,
                                        'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                                        'data', p_data);
    recipients text[];
BEGIN
    FOR t IN SELECT jsonb_array_elements(p_rule.targets) LOOP
        SELECT * INTO ch FROM aura.notification_channels c
         WHERE c.restaurant_id = p_restaurant AND c.name = t ->> 'channel';
        recipients := ARRAY(SELECT jsonb_array_elements_text(coalesce(t -> 'recipients', '[null]')));
        IF cardinality(recipients) = 0 THEN
            recipients := ARRAY[NULL]::text[];
        END IF;
        FOREACH rcpt IN ARRAY recipients LOOP
            nid := nextval(pg_get_serial_sequence('aura.notifications', 'id'));
            IF ch.id IS NULL OR NOT ch.enabled THEN
                -- a rule pointing at a missing or disabled channel: recorded, never sent
                INSERT INTO aura.notifications (restaurant_id, id, msg_id, event_type, channel, rule_id, recipient,
                                                payload, status, last_error)
                OVERRIDING SYSTEM VALUE
                VALUES (p_restaurant, nid, format('msg_%s_%s', p_restaurant, nid), p_event_type,
                        coalesce(ch.channel, 'webhook'), p_rule.id, rcpt, payload, 'dead',
                        CASE WHEN ch.id IS NULL THEN format('rule "%s" names channel "%s", which does not exist', p_rule.name, t ->> 'channel')
                             ELSE format('channel "%s" is disabled: %s', ch.name, coalesce(ch.disabled_reason, 'by its owner')) END);
            ELSIF ch.channel = 'in_app' THEN
                IF rcpt IS NULL OR rcpt !~ '^[1-9][0-9]{0,18}$' THEN
                    INSERT INTO aura.notifications (restaurant_id, id, msg_id, event_type, channel, channel_id, rule_id,
                                                    recipient, payload, status, last_error)
                    OVERRIDING SYSTEM VALUE
                    VALUES (p_restaurant, nid, format('msg_%s_%s', p_restaurant, nid), p_event_type, 'in_app', ch.id,
                            p_rule.id, rcpt, payload, 'dead', format('in_app recipient must be a user id, not %s', coalesce(rcpt, 'NULL')));
                ELSE
                    INSERT INTO aura.inbox (restaurant_id, user_id, msg_id, event_type, severity, title, body, data)
                    VALUES (p_restaurant, rcpt::bigint, format('msg_%s_%s', p_restaurant, nid), p_event_type,
                            aura._event_severity(p_data), aura._event_title(p_event_type, p_data),
                            aura._event_text(p_event_type, p_data), p_data);
                    INSERT INTO aura.notifications (restaurant_id, id, msg_id, event_type, channel, channel_id, rule_id,
                                                    recipient, payload, status, attempts, delivered_at)
                    OVERRIDING SYSTEM VALUE
                    VALUES (p_restaurant, nid, format('msg_%s_%s', p_restaurant, nid), p_event_type, 'in_app', ch.id,
                            p_rule.id, rcpt, payload, 'delivered', 1, now());
                END IF;
            ELSE
                INSERT INTO aura.notifications (restaurant_id, id, msg_id, event_type, channel, channel_id, rule_id,
                                                recipient, payload, max_attempts, next_attempt_at)
                OVERRIDING SYSTEM VALUE
                VALUES (p_restaurant, nid, format('msg_%s_%s', p_restaurant, nid), p_event_type, ch.channel, ch.id,
                        p_rule.id, rcpt, payload, aura._max_attempts(NULL), coalesce(p_not_before, now()));
            END IF;
            n := n + 1;
        END LOOP;
    END LOOP;
    RETURN n;
END
$$;

CREATE FUNCTION aura._max_attempts(max_retries int) RETURNS int
    LANGUAGE sql STABLE
    AS $$
    SELECT 1 + least(coalesce(max_retries, cardinality(string_to_array(current_setting('aura.retry_schedule'), ','))), 10)
$$;

-- end of the quiet period that contains local time t, or NULL when t is not quiet
CREATE FUNCTION aura._quiet_until(p_rule aura.notification_rules, tz text) RETURNS timestamptz
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    local_now timestamp := now() AT TIME ZONE tz;
    t time := local_now::time;
BEGIN
    IF p_rule.quiet_start IS NULL OR p_rule.quiet_start = p_rule.quiet_end THEN
        RETURN NULL;
    END IF;
    IF p_rule.quiet_start < p_rule.quiet_end THEN
        IF t >= p_rule.quiet_start AND t < p_rule.quiet_end THEN
            RETURN (local_now::date + p_rule.quiet_end) AT TIME ZONE tz;
        END IF;
    ELSIF t >= p_rule.quiet_start THEN
        RETURN (local_now::date + 1 + p_rule.quiet_end) AT TIME ZONE tz;
    ELSIF t < p_rule.quiet_end THEN
        RETURN (local_now::date + p_rule.quiet_end) AT TIME ZONE tz;
    END IF;
    RETURN NULL;
END
$$;

-- a JSON number as numeric, NULL for anything else (filters never fail on odd data)
CREATE FUNCTION aura._json_numeric(v jsonb) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'number' THEN (v #>> '{}')::numeric END
$$;

CREATE FUNCTION aura.emit_event(restaurant_id bigint, event_type text, data jsonb DEFAULT '{}')
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    d jsonb := emit_event.data;
    i record;
BEGIN
    PERFORM aura._check_tenant(emit_event.restaurant_id);
    -- insight events (emitted by the insights module with the insight's id)
    -- are completed from aura.insights, so rules can filter on impact and
    -- value and renderers show description and recommendations
    IF emit_event.event_type LIKE 'insight.%' AND jsonb_typeof(d -> 'insight_id') = 'number'
       AND NOT d ? 'impact' THEN
        SELECT ins.impact_score, ins.estimated_value, ins.description, ins.recommendations INTO i
          FROM aura.insights ins
         WHERE ins.restaurant_id = emit_event.restaurant_id AND ins.id = (d ->> 'insight_id')::bigint;
        IF FOUND THEN
            d := jsonb_strip_nulls(jsonb_build_object('impact', i.impact_score, 'value', i.estimated_value,
                                                      'description', i.description,
                                                      'recommendations', i.recommendations)) || d;
        END IF;
    END IF;
    RETURN aura._emit_event(emit_event.restaurant_id, emit_event.event_type, d);
END
$$;
COMMENT ON FUNCTION aura.emit_event(bigint, text, jsonb) IS
    'Emits an event: queues messages to matching webhooks and rules in the caller''s transaction (a rollback sends nothing). Returns the event id.';

-- the work of emit_event without the caller's tenant check (the dispatcher's
-- jobs, which run without a restaurant in context, call it directly)
CREATE FUNCTION aura._emit_event(restaurant_id bigint, event_type text, data jsonb)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    r bigint := _emit_event.restaurant_id;
    et text := _emit_event.event_type;
    impact numeric := aura._json_numeric(coalesce(_emit_event.data -> 'impact', _emit_event.data -> 'impact_score'));
    val numeric := aura._json_numeric(coalesce(_emit_event.data -> 'value', _emit_event.data -> 'estimated_value'));
    ev bigint;
    tz text;
    payload jsonb;
    rule aura.notification_rules;
    sev int;
    dkey text;
    quiet timestamptz;
    mode text;
    reason text;
BEGIN
    IF r IS NULL THEN
        RAISE EXCEPTION 'restaurant_id must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF et IS NULL OR length(et) > 100 OR et !~ '^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$' THEN
        RAISE EXCEPTION 'invalid event type "%"', left(coalesce(et, 'NULL'), 100)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Event types are lower-case dotted names such as reward.issued.';
    END IF;
    IF data IS NULL OR jsonb_typeof(data) <> 'object' THEN
        RAISE EXCEPTION 'event data must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('got: %s', left(coalesce(data::text, 'NULL'), 100));
    END IF;
    IF pg_column_size(data) > 262144 THEN
        RAISE EXCEPTION 'event data too large' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('%s bytes, at most 262144', pg_column_size(data));
    END IF;
    ev := nextval('aura.events_id_seq');
    payload := jsonb_build_object('type', et,
                                  'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                                  'data', data);

    -- webhook subscriptions: one message per matching endpoint
    INSERT INTO aura.notifications (restaurant_id, msg_id, event_type, channel, webhook_id, payload, max_attempts)
    SELECT r, 'msg_' || r || '_' || ev || '_w' || w.id, et, 'webhook', w.id, payload, aura._max_attempts(w.max_retries)
      FROM aura.webhooks w
     WHERE w.restaurant_id = r AND w.active AND aura._event_matches(w.events, et);

    -- rules
    sev := aura._severity_rank(aura._event_severity(data));
    FOR rule IN SELECT * FROM aura.notification_rules nr
                 WHERE nr.restaurant_id = r AND nr.enabled AND aura._event_matches(nr.event_types, et)
                   AND aura._severity_rank(nr.min_severity) <= sev
                   AND (cardinality(nr.insight_domains) = 0 OR data ->> 'domain' = ANY (nr.insight_domains))
                   AND (cardinality(nr.insight_types) = 0 OR data ->> 'type' = ANY (nr.insight_types))
                   -- an event without an impact (value) never passes a minimum impact (value)
                   AND (nr.min_impact IS NULL OR impact >= nr.min_impact)
                   AND (nr.min_value IS NULL OR val >= nr.min_value)
                 ORDER BY nr.id LOOP
        dkey := coalesce(data ->> 'dedupe_key', md5(et || ':' || data::text));
        IF rule.max_per_hour IS NOT NULL OR rule.max_per_day IS NOT NULL OR rule.dedupe_window > '0' THEN
            -- serialise this rule's matches: limits and dedupe are exact under concurrency
            PERFORM 1 FROM aura.notification_rules nr WHERE nr.restaurant_id = r AND nr.id = rule.id FOR UPDATE;
        END IF;
        mode := CASE WHEN cardinality(rule.digest_hours) > 0 THEN 'digest' ELSE 'immediate' END;
        reason := NULL;
        IF rule.dedupe_window > '0' AND EXISTS (
            SELECT 1 FROM aura.rule_matches m
             WHERE m.restaurant_id = r AND m.rule_id = rule.id AND m.dedupe_key = dkey
               AND m.mode <> 'deduped' AND m.at > clock_timestamp() - rule.dedupe_window) THEN
            mode := 'deduped';
            reason := 'duplicate within the dedupe window';
        ELSIF mode = 'immediate' AND (
            (rule.max_per_hour IS NOT NULL AND (SELECT count(*) FROM aura.rule_matches m
                WHERE m.restaurant_id = r AND m.rule_id = rule.id AND m.mode = 'immediate'
                  AND m.at > clock_timestamp() - interval '1 hour') >= rule.max_per_hour)
            OR (rule.max_per_day IS NOT NULL AND (SELECT count(*) FROM aura.rule_matches m
                WHERE m.restaurant_id = r AND m.rule_id = rule.id AND m.mode = 'immediate'
                  AND m.at > clock_timestamp() - interval '1 day') >= rule.max_per_day)) THEN
            mode := 'digest';
            reason := 'over the rate limit';
        END IF;
        INSERT INTO aura.rule_matches (restaurant_id, rule_id, event_type, data, dedupe_key, mode, reason, at)
        VALUES (r, rule.id, et, data, dkey, mode, reason, clock_timestamp());
        IF mode = 'immediate' THEN
            IF tz IS NULL THEN
                SELECT timezone INTO tz FROM aura.restaurants WHERE id = r;
            END IF;
            quiet := aura._quiet_until(rule, tz);
            PERFORM aura._queue_rule_targets(r, rule, et, data, quiet);
        END IF;
    END LOOP;
    RETURN ev;
END
$$;

-- digests: pending matches of a rule go out as one message per target when due
CREATE FUNCTION aura.run_digests() RETURNS int
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    rule aura.notification_rules;
    tz text;
    local_now timestamp;
    items jsonb;
    ids bigint[];
    n int := 0;
BEGIN
    IF NOT aura._caller_is_admin() THEN
        RAISE EXCEPTION 'only aura_admin runs digests' USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOR rule IN SELECT nr.* FROM aura.notification_rules nr
                 WHERE EXISTS (SELECT 1 FROM aura.rule_matches m WHERE m.restaurant_id = nr.restaurant_id
                                  AND m.rule_id = nr.id AND m.mode = 'digest' AND m.digested_at IS NULL)
                 FOR UPDATE OF nr SKIP LOCKED LOOP
        SELECT timezone INTO tz FROM aura.restaurants WHERE id = rule.restaurant_id;
        local_now := now() AT TIME ZONE tz;
        -- a digest rule sends at its hours; an immediate rule's overflow at the next full hour
        IF cardinality(rule.digest_hours) > 0 THEN
            CONTINUE WHEN NOT extract(hour FROM local_now)::int = ANY (rule.digest_hours);
            CONTINUE WHEN rule.last_digest_at >= date_trunc('hour', local_now) AT TIME ZONE tz;
        END IF;
        SELECT jsonb_agg(jsonb_build_object('type', m.event_type, 'at', m.at, 'data', m.data) ORDER BY m.id),
               array_agg(m.id)
          INTO items, ids
          FROM aura.rule_matches m
         WHERE m.restaurant_id = rule.restaurant_id AND m.rule_id = rule.id AND m.mode = 'digest'
           AND m.digested_at IS NULL
           AND (cardinality(rule.digest_hours) > 0 OR m.at < date_trunc('hour', now()));
        CONTINUE WHEN ids IS NULL;
        UPDATE aura.rule_matches m SET digested_at = now()
         WHERE m.restaurant_id = rule.restaurant_id AND m.id = ANY (ids);
        UPDATE aura.notification_rules nr SET last_digest_at = now()
         WHERE nr.restaurant_id = rule.restaurant_id AND nr.id = rule.id;
        PERFORM aura._queue_rule_targets(rule.restaurant_id, rule, 'digest',
            jsonb_build_object('title', format('Digest: %s events for rule %s', cardinality(ids), rule.name),
                               'severity', (SELECT max_sev FROM (
                                   SELECT (ARRAY['info','low','medium','high','critical'])[max(aura._severity_rank(aura._event_severity(x -> 'data')))] max_sev
                                     FROM jsonb_array_elements(items) x) s),
                               'rule', rule.name, 'count', cardinality(ids), 'items', items), NULL);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION aura.run_digests() IS 'Sends the digests that are due (a job of the dispatcher); returns how many were queued.';

CREATE FUNCTION aura.test_webhook(webhook_id bigint) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    r bigint := aura._context_restaurant();
    nid bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM aura.webhooks w WHERE w.restaurant_id = r AND w.id = webhook_id) THEN
        RAISE EXCEPTION 'webhook % does not exist', webhook_id USING ERRCODE = 'no_data_found';
    END IF;
    nid := nextval(pg_get_serial_sequence('aura.notifications', 'id'));
    INSERT INTO aura.notifications (restaurant_id, id, msg_id, event_type, channel, webhook_id, payload, max_attempts)
    OVERRIDING SYSTEM VALUE
    VALUES (r, nid, format('msg_%s_%s_test', r, nid), 'webhook.test', 'webhook', webhook_id,
            jsonb_build_object('type', 'webhook.test',
                               'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                               'data', jsonb_build_object('webhook_id', webhook_id, 'message', 'ping from aura')), 1);
    RETURN nid;
END
$$;
COMMENT ON FUNCTION aura.test_webhook(bigint) IS
    'Queues a real ping (event webhook.test, one attempt) to the webhook; the outcome shows in aura.notifications and webhooks.verified_at.';

CREATE FUNCTION aura.retry_dead(ids bigint[]) RETURNS int
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    n int;
BEGIN
    IF ids IS NULL OR cardinality(ids) > 100000 THEN
        RAISE EXCEPTION 'ids must be an array of at most 100000 notification ids' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE aura.notifications n
       SET status = 'queued', attempts = 0, next_attempt_at = now(), last_error = NULL, lease_until = NULL
     WHERE n.id = ANY (ids) AND n.status = 'dead'
       AND (aura._caller_is_admin() OR n.restaurant_id = aura.current_restaurant());
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION aura.retry_dead(bigint[]) IS 'Queues dead-lettered notifications of the caller''s restaurant again with fresh attempts; returns how many.';

CREATE FUNCTION aura.inbox_unread(user_id bigint) RETURNS SETOF aura.inbox
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
    SELECT * FROM aura.inbox i
     WHERE i.restaurant_id = aura.current_restaurant() AND i.user_id = inbox_unread.user_id AND i.read_at IS NULL
     ORDER BY i.created_at DESC, i.id DESC
$$;

CREATE FUNCTION aura.mark_read(user_id bigint, ids bigint[] DEFAULT NULL) RETURNS int
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    r bigint := aura._context_restaurant();
    n int;
BEGIN
    IF user_id IS NULL OR user_id <= 0 THEN
        RAISE EXCEPTION 'user_id must be a positive id' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE aura.inbox i SET read_at = now()
     WHERE i.restaurant_id = r AND i.user_id = mark_read.user_id AND i.read_at IS NULL
       AND (ids IS NULL OR i.id = ANY (ids));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION aura.mark_read(bigint, bigint[]) IS 'Marks inbox items of a user (all, or the given ids) as read; returns how many.';

------------------------------------------------------------------------------
-- Dispatcher interface: claim, record, cleanup, status
------------------------------------------------------------------------------
-- one request as the worker sends it
CREATE TYPE aura.outbound AS (
    restaurant_id bigint, id bigint, attempt int, kind text, url text, headers text[], body text,
    username text, password text, mail_from text, mail_rcpt text[], tls text, timeout_ms int, error text);

-- render a non-webhook message; errors become an 'error' request (recorded, never sent)
CREATE FUNCTION aura._render(p_restaurant bigint, p_id bigint, p_attempts int, p_msg_id text, p_event_type text,
                             p_channel_id bigint, p_recipient text, p_payload jsonb) RETURNS aura.outbound
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    o aura.outbound;
    ch aura.notification_channels;
    sec text;
    d jsonb := p_payload -> 'data';
    base text;
    n record;
BEGIN
    SELECT p_restaurant AS restaurant_id, p_id AS id, p_msg_id AS msg_id, p_event_type AS event_type,
           p_channel_id AS channel_id, p_recipient AS recipient, p_payload AS payload INTO n;
    o.restaurant_id := p_restaurant; o.id := p_id; o.attempt := p_attempts;
    o.timeout_ms := NULL;      -- the dispatcher's aura.http_timeout
    SELECT * INTO ch FROM aura.notification_channels c WHERE c.restaurant_id = n.restaurant_id AND c.id = n.channel_id;
    IF ch.id IS NULL THEN
        o.kind := 'error'; o.error := format('channel %s does not exist', n.channel_id); RETURN o;
    ELSIF NOT ch.enabled THEN
        o.kind := 'error'; o.error := format('channel "%s" is disabled: %s', ch.name, coalesce(ch.disabled_reason, 'by its owner')); RETURN o;
    END IF;
    IF ch.secret IS NOT NULL THEN
        sec := aura._decrypt_secret(ch.secret, ch.restaurant_id);
        IF sec IS NULL THEN
            o.kind := 'error'; o.error := 'cannot decrypt the channel secret (the master key that sealed it is not loaded)'; RETURN o;
        END IF;
    ELSIF aura._channel_secret_key(ch.channel) IS NOT NULL THEN
        -- the restaurant's secret setting, decrypted with the settings master key
        sec := aura._channel_setting_secret(aura._channel_secret_key(ch.channel), n.restaurant_id);
        -- an SMTP password is optional (a relay without login); Slack and SMS need theirs
        IF sec IS NULL AND ch.channel <> 'email' THEN
            o.kind := 'error';
            o.error := format('channel "%s" has no secret: set %s or pass one to set_notification_channel',
                              ch.name, aura._channel_secret_key(ch.channel));
            RETURN o;
        END IF;
    END IF;
    IF ch.channel IN ('email', 'sms') THEN
        ch.config := aura._channel_settings(ch.channel, n.restaurant_id) || ch.config;
    END IF;
    IF ch.channel = 'slack' THEN
        o.kind := 'http'; o.url := sec;
        o.headers := ARRAY['Content-Type: application/json', 'User-Agent: aura/' || aura.version()];
        o.body := aura._slack_blocks(n.event_type, d)::text;
    ELSIF ch.channel = 'webhook' THEN
        o.kind := 'http'; o.url := ch.config ->> 'url';
        o.body := n.payload::text;
        o.headers := ARRAY['Content-Type: application/json', 'User-Agent: aura/' || aura.version(),
                           'webhook-id: ' || n.msg_id,
                           'webhook-timestamp: ' || extract(epoch FROM now())::bigint];
        IF sec IS NOT NULL THEN
            o.headers := o.headers || ('webhook-signature: ' || aura.webhook_sign(sec, n.msg_id, extract(epoch FROM now())::bigint, o.body));
        END IF;
    ELSIF ch.channel = 'sms' THEN
        IF n.recipient IS NULL OR n.recipient !~ '^\+?[0-9]{6,16}$' THEN
            o.kind := 'error'; o.error := format('malformed sms recipient %s', left(coalesce(n.recipient, 'NULL'), 40)); RETURN o;
        END IF;
        base := rtrim(coalesce(ch.config ->> 'base_url', 'https://api.twilio.com'), '/');
        o.kind := 'http';
        o.url := format('%s/2010-04-01/Accounts/%s/Messages.json', base, ch.config ->> 'account_sid');
        o.username := ch.config ->> 'account_sid'; o.password := sec;
        o.headers := ARRAY['Content-Type: application/x-www-form-urlencoded', 'User-Agent: aura/' || aura.version()];
        o.body := 'To=' || aura._form_encode(n.recipient) || '&From=' || aura._form_encode(ch.config ->> 'from')
                  || '&Body=' || aura._form_encode(left(format('[%s] %s: %s', upper(aura._event_severity(d)),
                        aura._event_title(n.event_type, d), coalesce(d ->> 'description', d ->> 'message', '')), 1500));
    ELSIF ch.channel = 'email' THEN
        IF n.recipient IS NULL OR n.recipient !~ '^[^\s<>@,;"]+@[A-Za-z0-9.-]+$' THEN
            o.kind := 'error'; o.error := format('malformed email recipient %s', left(coalesce(n.recipient, 'NULL'), 100)); RETURN o;
        END IF;
        o.kind := 'smtp';
        o.tls := coalesce(ch.config ->> 'tls', 'starttls');
        o.url := format('%s://%s:%s', CASE WHEN o.tls = 'implicit' THEN 'smtps' ELSE 'smtp' END,
                        ch.config ->> 'host', coalesce(ch.config ->> 'port', CASE WHEN o.tls = 'implicit' THEN '465' ELSE '587' END));
        o.username := ch.config ->> 'username'; o.password := sec;
        o.mail_from := ch.config ->> 'from'; o.mail_rcpt := ARRAY[n.recipient];
        o.body := aura._email_message(ch.config ->> 'from', n.recipient, n.msg_id, n.event_type, d);
    ELSE
        o.kind := 'error'; o.error := format('channel type %s is not sent by the dispatcher', ch.channel);
    END IF;
    RETURN o;
EXCEPTION WHEN OTHERS THEN
    o.kind := 'error'; o.error := 'cannot render the message: ' || SQLERRM;
    RETURN o;
END
$$;

CREATE FUNCTION aura._form_encode(s text) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT coalesce(string_agg(CASE WHEN b ~ '^[A-Za-z0-9._~-]$' THEN b
                                    ELSE (SELECT string_agg('%' || upper(lpad(to_hex(get_byte(x, i)), 2, '0')), '')
                                            FROM (SELECT convert_to(b, 'UTF8') x) c, generate_series(0, length(convert_to(b, 'UTF8')) - 1) i) END,
                               '' ORDER BY o), '')
      FROM regexp_split_to_table(coalesce(s, ''), '') WITH ORDINALITY t(b, o)
$$;

-- claim due messages: reclaim expired leases, lock a batch (SKIP LOCKED), mark it sending
CREATE FUNCTION aura._claim(batch int, lease_seconds int) RETURNS SETOF aura.outbound
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    ts bigint := extract(epoch FROM now())::bigint;
BEGIN
    -- expired leases: the worker died mid-send; the attempt counts, the message goes again
    WITH expired AS (
        UPDATE aura.notifications n
           SET status = CASE WHEN n.attempts >= n.max_attempts THEN 'dead' ELSE 'failed' END,
               lease_until = NULL, last_error = 'lease expired (dispatcher stopped while sending)'
         WHERE n.status = 'sending' AND n.lease_until < now()
        RETURNING n.*)
    INSERT INTO aura.delivery_log (restaurant_id, notification_id, msg_id, attempt, outcome, error)
    SELECT e.restaurant_id, e.id, e.msg_id, e.attempts, e.status, e.last_error FROM expired e;

    RETURN QUERY
    WITH c AS (
        SELECT n.restaurant_id, n.id FROM aura.notifications n
         WHERE n.status IN ('queued', 'failed') AND n.next_attempt_at <= now()
         ORDER BY n.next_attempt_at
         LIMIT batch
         FOR UPDATE SKIP LOCKED),
    u AS (
        UPDATE aura.notifications n
           SET status = 'sending', attempts = n.attempts + 1,
               lease_until = now() + make_interval(secs => lease_seconds)
          FROM c WHERE n.restaurant_id = c.restaurant_id AND n.id = c.id
        RETURNING n.restaurant_id, n.id, n.attempts, n.msg_id, n.event_type, n.channel, n.webhook_id,
                  n.channel_id, n.recipient, n.payload),
    w AS MATERIALIZED (
        SELECT wh.restaurant_id, wh.id, wh.url, wh.timeout_ms, wh.active, wh.disabled_reason,
               aura._decrypt_secret(wh.secret, wh.restaurant_id) AS s1,
               CASE WHEN wh.previous_secret_until > now() THEN aura._decrypt_secret(wh.previous_secret, wh.restaurant_id) END AS s2,
               ARRAY['Content-Type: application/json', 'User-Agent: aura/' || aura.version()] AS fixed,
               ARRAY(SELECT k || ': ' || v FROM jsonb_each_text(wh.headers) e(k, v)) AS extra
          FROM aura.webhooks wh
         WHERE (wh.restaurant_id, wh.id) IN (SELECT u.restaurant_id, u.webhook_id FROM u WHERE u.webhook_id IS NOT NULL))
    SELECT u.restaurant_id, u.id, u.attempts,
           CASE WHEN w.id IS NULL THEN 'error' WHEN NOT w.active THEN 'error' WHEN w.s1 IS NULL THEN 'error' ELSE 'http' END,
           w.url,
           w.fixed || ARRAY['webhook-id: ' || u.msg_id, 'webhook-timestamp: ' || ts,
                 'webhook-signature: ' || aura.webhook_sign(w.s1, u.msg_id, ts, b.body)
                     || coalesce(' ' || aura.webhook_sign(w.s2, u.msg_id, ts, b.body), '')] || w.extra,
           b.body, NULL::text, NULL::text, NULL::text, NULL::text[], NULL::text, w.timeout_ms,
           CASE WHEN w.id IS NULL THEN 'webhook ' || u.webhook_id || ' does not exist'
                WHEN NOT w.active THEN 'webhook disabled: ' || coalesce(w.disabled_reason, 'by its owner')
                WHEN w.s1 IS NULL THEN 'cannot decrypt the webhook secret (the master key that sealed it is not loaded)' END
      FROM u LEFT JOIN w ON w.restaurant_id = u.restaurant_id AND w.id = u.webhook_id
           CROSS JOIN LATERAL (SELECT u.payload::text AS body) b
     WHERE u.channel = 'webhook' AND u.webhook_id IS NOT NULL
    UNION ALL
    SELECT r.*
      FROM u, LATERAL aura._render(u.restaurant_id, u.id, u.attempts, u.msg_id, u.event_type, u.channel_id,
                                   u.recipient, u.payload) r
     WHERE NOT (u.channel = 'webhook' AND u.webhook_id IS NOT NULL);
END
$$;

-- delay before attempt n+1 (n = attempts made): the retry schedule with +-20% jitter
CREATE FUNCTION aura._retry_delay(attempts int) RETURNS interval
    LANGUAGE sql VOLATILE
    AS $$
    SELECT make_interval(secs => s::float8 * (0.8 + random() * 0.4))
      FROM (SELECT (string_to_array(current_setting('aura.retry_schedule'), ','))[
                       least(greatest(attempts, 1), cardinality(string_to_array(current_setting('aura.retry_schedule'), ',')))]::numeric AS s) x
$$;

-- record outcomes of a batch: outcome is delivered | failed | gone (410: no retry, disable) |
-- permanent (no retry) | released (not attempted: the worker was stopping)
CREATE FUNCTION aura._record(rids bigint[], ids bigint[], outcomes text[], codes int[], errors text[], latencies int[])
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    disable_after int := current_setting('aura.webhook_disable_after')::int;
BEGIN
    -- one statement: the outbox rows, the log, and the endpoints' health
    WITH upd AS (
        UPDATE aura.notifications n
           SET status = CASE WHEN o.outcome = 'delivered' THEN 'delivered'
                             WHEN o.outcome = 'released' THEN 'queued'
                             WHEN o.outcome IN ('gone', 'permanent') OR n.attempts >= n.max_attempts THEN 'dead'
                             -- Slack: 400 invalid_payload, 403 invalid_token / action_prohibited,
                             -- 404 channel_not_found / no_service never succeed on a retry
                             WHEN n.channel = 'slack' AND o.code IN (400, 403, 404) THEN 'dead'
                             ELSE 'failed' END,
               attempts = CASE WHEN o.outcome = 'released' THEN n.attempts - 1 ELSE n.attempts END,
               next_attempt_at = CASE WHEN o.outcome = 'failed' THEN now() + aura._retry_delay(n.attempts)
                                      ELSE n.next_attempt_at END,
               lease_until = NULL,
               delivered_at = CASE WHEN o.outcome = 'delivered' THEN now() END,
               last_error = CASE WHEN o.outcome IN ('delivered', 'released') THEN n.last_error ELSE left(o.error, 1000) END,
               response_code = coalesce(o.code, n.response_code),
               latency_ms = coalesce(o.latency, n.latency_ms)
          FROM unnest(rids, ids, outcomes, codes, errors, latencies) o(restaurant_id, id, outcome, code, error, latency)
         WHERE n.restaurant_id = o.restaurant_id AND n.id = o.id AND n.status = 'sending'
        RETURNING n.restaurant_id, n.id, n.msg_id, n.attempts, n.status, n.response_code, n.latency_ms,
                  n.last_error, n.webhook_id, n.channel_id, n.event_type, n.channel,
                  -- a Slack webhook that was revoked or whose channel is gone: treat like 410
                  CASE WHEN n.channel = 'slack' AND o.outcome = 'failed' AND o.code IN (403, 404)
                       THEN 'gone' ELSE o.outcome END AS outcome),
    -- endpoint health: a success resets the streak; a 410, or N messages in a row
    -- dead-lettered (retries exhausted), disable the webhook.  Failed attempts
    -- that will be retried do not count: an outage shorter than the retry
    -- schedule never disables an endpoint.
    wh AS (
        UPDATE aura.webhooks w
           SET last_success_at = CASE WHEN s.ok > 0 THEN now() ELSE w.last_success_at END,
               last_failure_at = CASE WHEN s.bad > 0 THEN now() ELSE w.last_failure_at END,
               failure_count = CASE WHEN s.last_ok THEN 0 ELSE w.failure_count + s.died END,
               verified_at = CASE WHEN s.ping_ok THEN now() ELSE w.verified_at END,
               active = w.active AND NOT s.gone AND (s.last_ok OR w.failure_count + s.died < disable_after),
               disabled_reason = CASE WHEN s.gone THEN 'the endpoint answered 410 Gone'
                                      WHEN NOT s.last_ok AND w.active AND w.failure_count + s.died >= disable_after
                                      THEN format('%s consecutive messages dead-lettered', w.failure_count + s.died)
                                      ELSE w.disabled_reason END
          FROM (SELECT u.restaurant_id, u.webhook_id,
                       count(*) FILTER (WHERE u.outcome = 'delivered') ok,
                       count(*) FILTER (WHERE u.outcome IN ('failed', 'gone', 'permanent')) bad,
                       count(*) FILTER (WHERE u.outcome <> 'delivered' AND u.status = 'dead') died,
                       bool_or(u.outcome = 'gone') gone,
                       bool_or(u.outcome = 'delivered' AND u.event_type = 'webhook.test') ping_ok,
                       (array_agg(u.outcome = 'delivered' ORDER BY u.id DESC))[1] last_ok
                  FROM upd u
                 WHERE u.webhook_id IS NOT NULL AND u.outcome <> 'released'
                 GROUP BY 1, 2) s
         WHERE w.restaurant_id = s.restaurant_id AND w.id = s.webhook_id),
    ch AS (
        UPDATE aura.notification_channels c
           SET last_success_at = CASE WHEN s.ok > 0 THEN now() ELSE c.last_success_at END,
               last_failure_at = CASE WHEN s.bad > 0 THEN now() ELSE c.last_failure_at END,
               failure_count = CASE WHEN s.ok > 0 THEN 0 ELSE c.failure_count + s.bad END,
               enabled = c.enabled AND NOT s.gone,
               disabled_reason = CASE WHEN s.gone THEN format('the endpoint answered %s (Slack: webhook revoked, channel or app removed)', s.gone_code)
                                      ELSE c.disabled_reason END
          FROM (SELECT u.restaurant_id, u.channel_id,
                       count(*) FILTER (WHERE u.outcome = 'delivered') ok,
                       count(*) FILTER (WHERE u.outcome IN ('failed', 'gone', 'permanent')) bad,
                       bool_or(u.outcome = 'gone') gone,
                       max(u.response_code) FILTER (WHERE u.outcome = 'gone') gone_code
                  FROM upd u
                 WHERE u.channel_id IS NOT NULL AND u.outcome <> 'released'
                 GROUP BY 1, 2) s
         WHERE c.restaurant_id = s.restaurant_id AND c.id = s.channel_id)
    INSERT INTO aura.delivery_log (restaurant_id, notification_id, msg_id, attempt, outcome, response_code, latency_ms, error)
    SELECT u.restaurant_id, u.id, u.msg_id, u.attempts + CASE WHEN u.status = 'queued' THEN 1 ELSE 0 END,
           CASE u.status WHEN 'queued' THEN 'released' ELSE u.status END, u.response_code, u.latency_ms,
           CASE WHEN u.status IN ('failed', 'dead') THEN u.last_error END
      FROM upd u;
END
$$;

CREATE FUNCTION aura.cleanup_notifications() RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    horizon timestamptz := now() - make_interval(days => aura._retention_days());
    n bigint;
    m bigint;
BEGIN
    IF NOT aura._caller_is_admin() THEN
        RAISE EXCEPTION 'only aura_admin removes old notifications' USING ERRCODE = 'insufficient_privilege';
    END IF;
    DELETE FROM aura.notifications WHERE status IN ('delivered', 'dead') AND created_at < horizon;
    GET DIAGNOSTICS n = ROW_COUNT;
    DELETE FROM aura.delivery_log WHERE at < horizon;
    GET DIAGNOSTICS m = ROW_COUNT;
    DELETE FROM aura.rule_matches WHERE at < horizon AND (mode <> 'digest' OR digested_at IS NOT NULL);
    DELETE FROM aura.inbox WHERE read_at IS NOT NULL AND created_at < horizon;
    RETURN n + m;
END
$$;
COMMENT ON FUNCTION aura.cleanup_notifications() IS
    'Retention job: removes delivered and dead messages, delivery log rows, matched events and read inbox items older than aura.notification_retention_days.';

-- reseal_notification_secrets: channel and webhook secrets sealed with an
-- older master key (after aura.rotate_encryption_key) or with the legacy
-- aura.notify_secret_key are sealed again with the current master key.
-- A dispatcher job runs it; admins may call it at once after a rotation.
CREATE FUNCTION aura.reseal_notification_secrets(batch int DEFAULT 1000) RETURNS int
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    cur text;
    x record;
    plain text;
    plain2 text;
    done int := 0;
    unreadable int := 0;
BEGIN
    IF NOT aura._caller_is_admin() THEN
        RAISE EXCEPTION 'only aura_admin may re-seal notification secrets' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF batch IS NULL OR batch < 1 OR batch > 100000 THEN
        RAISE EXCEPTION 'batch must be between 1 and 100000' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('batch: %s', coalesce(batch::text, 'NULL'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM aura.notification_channels WHERE secret IS NOT NULL)
       AND NOT EXISTS (SELECT 1 FROM aura.webhooks) THEN
        RETURN 0;       -- nothing sealed: no master key needed
    END IF;
    cur := aura._current_key_id();
    FOR x IN SELECT c.restaurant_id, c.id, c.secret FROM aura.notification_channels c
              WHERE c.secret IS NOT NULL AND aura._sealed_key_id(c.secret) IS DISTINCT FROM cur
              ORDER BY c.restaurant_id, c.id LIMIT batch FOR UPDATE SKIP LOCKED LOOP
        plain := aura._decrypt_secret(x.secret, x.restaurant_id);
        IF plain IS NULL THEN
            unreadable := unreadable + 1;
            CONTINUE;
        END IF;
        UPDATE aura.notification_channels c SET secret = aura._encrypt_secret(plain, x.restaurant_id)
         WHERE c.restaurant_id = x.restaurant_id AND c.id = x.id;
        plain := NULL;
        done := done + 1;
    END LOOP;
    FOR x IN SELECT w.restaurant_id, w.id, w.secret, w.previous_secret FROM aura.webhooks w
              WHERE aura._sealed_key_id(w.secret) IS DISTINCT FROM cur
                 OR (w.previous_secret IS NOT NULL AND aura._sealed_key_id(w.previous_secret) IS DISTINCT FROM cur)
              ORDER BY w.restaurant_id, w.id LIMIT greatest(batch - done, 0) FOR UPDATE SKIP LOCKED LOOP
        plain := aura._decrypt_secret(x.secret, x.restaurant_id);
        plain2 := aura._decrypt_secret(x.previous_secret, x.restaurant_id);
        IF plain IS NULL OR (x.previous_secret IS NOT NULL AND plain2 IS NULL) THEN
            unreadable := unreadable + 1;
            CONTINUE;
        END IF;
        UPDATE aura.webhooks w SET secret = aura._encrypt_secret(plain, x.restaurant_id),
               previous_secret = aura._encrypt_secret(plain2, x.restaurant_id)
         WHERE w.restaurant_id = x.restaurant_id AND w.id = x.id;
        plain := NULL; plain2 := NULL;
        done := done + 1 + (x.previous_secret IS NOT NULL)::int;     -- values, as encryption_key_usage counts
    END LOOP;
    IF unreadable > 0 THEN
        RAISE WARNING '% notification secret(s) cannot be unsealed with the loaded keys', unreadable
            USING HINT = 'Keep the old master key (or aura.notify_secret_key) loaded until they are re-sealed.';
    END IF;
    RETURN done;
END
$$;
COMMENT ON FUNCTION aura.reseal_notification_secrets(int) IS
    'Re-seals up to batch channels and webhooks whose secrets are sealed with an older master key (or the legacy aura.notify_secret_key) with the current key; returns how many secret values (a webhook in rotation overlap has two).';

-- Channel and webhook secrets are sealed with the same master key as secret
-- settings: the settings part's rotation progress view (and through it the
-- encryption_key deployment check) counts them too.  Same columns as the
-- view of 10_settings.sql, which this replaces with its own rows plus ours;
-- a legacy (pgcrypto) value shows as key id 'notify_secret_key (legacy)'.
CREATE OR REPLACE VIEW aura.encryption_key_usage AS
    SELECT key_id, count(*) AS secret_values
      FROM (SELECT key_id FROM aura.system_settings WHERE key_id IS NOT NULL
            UNION ALL SELECT key_id FROM aura.setting_values WHERE key_id IS NOT NULL
            UNION ALL SELECT coalesce(aura._sealed_key_id(c.secret), 'notify_secret_key (legacy)')
                        FROM aura.notification_channels c WHERE c.secret IS NOT NULL
            UNION ALL SELECT coalesce(aura._sealed_key_id(w.secret), 'notify_secret_key (legacy)')
                        FROM aura.webhooks w
            UNION ALL SELECT coalesce(aura._sealed_key_id(w.previous_secret), 'notify_secret_key (legacy)')
                        FROM aura.webhooks w WHERE w.previous_secret IS NOT NULL) k
     GROUP BY key_id;
COMMENT ON VIEW aura.encryption_key_usage IS 'How many secret values each key id seals (rotation progress): secret settings, notification channel and webhook secrets.';

INSERT INTO aura.jobs (name, fn, every) VALUES
    ('notification_digests', 'aura.run_digests', '1 minute'),
    ('notification_retention', 'aura.cleanup_notifications', '1 hour'),
    ('notification_secrets_reseal', 'aura.reseal_notification_secrets', '5 minutes');

-- the periodic work of the other modules (each job runs in its own transaction;
-- a failure is recorded in its row and the others still run).  Daily jobs start
-- at fixed times of the next day (UTC), the others at the next full hour.
INSERT INTO aura.jobs (name, fn, every, next_run_at) VALUES
    ('award_birthdays', 'aura.award_birthdays', '1 day', date_trunc('day', now(), 'UTC') + interval '1 day 5 minutes'),
    ('expire_points', 'aura.expire_points', '1 day', date_trunc('day', now(), 'UTC') + interval '1 day 3 hours'),
    ('review_tiers', 'aura.review_tiers', '1 day', date_trunc('day', now(), 'UTC') + interval '1 day 3 hours 30 minutes');
-- (the insights and rewards parts register their own jobs: insight_expiry,
-- insight_detectors, reward_*)

CREATE FUNCTION aura.worker_status()
    RETURNS TABLE (pid int, started timestamptz, last_loop timestamptz, queue_depth bigint, in_flight int,
                   sent bigint, failed bigint, dead bigint, loops bigint, last_error text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    s record;
    r bigint := aura.current_restaurant();
BEGIN
    SELECT * INTO s FROM aura._worker_shmem();
    -- whether the dispatcher runs is everyone's business; its figures are not
    pid := s.pid; started := s.started; last_loop := s.last_loop;
    IF aura._caller_is_admin() THEN
        in_flight := s.in_flight; sent := s.sent; failed := s.failed;
        loops := s.loops; last_error := s.last_error;
        SELECT count(*) FILTER (WHERE n.status IN ('queued', 'failed', 'sending')),
               count(*) FILTER (WHERE n.status = 'dead')
          INTO queue_depth, dead
          FROM aura.notifications n;
    ELSE
        -- a tenant sees its own messages only: the same counters, computed from
        -- its rows (since the server started, like the shared counters); the
        -- server-wide loop count and last error (which may name another
        -- restaurant's host) stay hidden
        SELECT count(*) FILTER (WHERE n.status IN ('queued', 'failed', 'sending')),
               count(*) FILTER (WHERE n.status = 'dead'),
               count(*) FILTER (WHERE n.status = 'sending')
          INTO queue_depth, dead, in_flight
          FROM aura.notifications n
         WHERE n.restaurant_id = r;
        SELECT count(*) FILTER (WHERE l.outcome = 'delivered'),
               count(*) FILTER (WHERE l.outcome IN ('failed', 'dead'))
          INTO sent, failed
          FROM aura.delivery_log l
         WHERE l.restaurant_id = r AND l.at >= pg_catalog.pg_postmaster_start_time();
    END IF;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION aura.worker_status() IS 'The dispatcher: pid (NULL when not running), start, last loop, queue depth, in flight, counters; admins see server-wide figures, others those of their restaurant only (loops and last_error NULL); per-job state is in aura.jobs.';

------------------------------------------------------------------------------
-- Deployment checklist
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION aura._check_preload(OUT ok boolean, OUT detail text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    s record;
    running boolean;
BEGIN
    IF NOT aura._preloaded() THEN
        ok := false;
        detail := 'aura is not in shared_preload_libraries: functions work, but no dispatcher '
                  'runs; add it and restart the server';
        RETURN;
    END IF;
    -- a dispatcher that is (re)starting gets up to 3 s (it restarts 1 s after a failure)
    FOR i IN 1..30 LOOP
        SELECT * INTO s FROM aura._worker_shmem();
        EXIT WHEN s.pid IS NOT NULL;
        PERFORM pg_sleep(0.1);
    END LOOP;
    running := s.pid IS NOT NULL AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = s.pid);
    IF running AND coalesce(current_setting('aura.dispatcher_paused', true), 'off')::boolean THEN
        ok := false;
        detail := format('preloaded; dispatcher in database %s is paused (aura.dispatcher_paused = on): '
                         'nothing is delivered and no job runs until it is set off and the configuration reloaded',
                         current_setting('aura.database'));
    ELSIF running THEN
        ok := true;
        detail := format('preloaded; dispatcher running in database %s', current_setting('aura.database'));
    ELSE
        ok := false;
        detail := format('preloaded; the dispatcher is not running (aura.database = %s; see the server log)',
                         current_setting('aura.database'));
    END IF;
END
$$;

CREATE FUNCTION aura._check_notification_channels(OUT ok boolean, OUT detail text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    total int; disabled int; failing int;
BEGIN
    SELECT count(*), count(*) FILTER (WHERE NOT enabled),
           count(*) FILTER (WHERE enabled AND failure_count > 0)
      INTO total, disabled, failing
      FROM aura.notification_channels
     WHERE aura._caller_is_admin() OR restaurant_id = aura.current_restaurant();
    ok := total > 0 AND disabled = 0 AND failing = 0;
    detail := CASE WHEN total = 0 THEN 'no notification channels: add one with aura.set_notification_channel(...)'
                   ELSE format('%s channels, %s disabled, %s failing', total, disabled, failing) END;
END
$$;

CREATE FUNCTION aura._check_webhook_endpoints(OUT ok boolean, OUT detail text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    total int; inactive int; unverified int;
BEGIN
    SELECT count(*), count(*) FILTER (WHERE NOT active),
           count(*) FILTER (WHERE active AND verified_at IS NULL)
      INTO total, inactive, unverified
      FROM aura.webhooks
     WHERE aura._caller_is_admin() OR restaurant_id = aura.current_restaurant();
    ok := total > 0 AND inactive = 0 AND unverified = 0;
    detail := CASE WHEN total = 0 THEN 'no webhook endpoints: add one with aura.create_webhook(...)'
                   ELSE format('%s endpoints, %s disabled, %s not verified', total, inactive, unverified)
                        || CASE WHEN unverified > 0 THEN ' (run aura.test_webhook(id))' ELSE '' END END;
END
$$;
UPDATE aura.deployment_items SET check_fn = 'aura._check_notification_channels' WHERE name = 'notification_channels';
UPDATE aura.deployment_items SET check_fn = 'aura._check_webhook_endpoints' WHERE name = 'webhook_endpoints';

------------------------------------------------------------------------------
-- Privileges
------------------------------------------------------------------------------
GRANT SELECT (restaurant_id, id, name, channel, config, enabled, disabled_reason, last_success_at,
              last_failure_at, failure_count, created_at) ON aura.notification_channels TO aura_manager;
GRANT UPDATE (enabled), DELETE ON aura.notification_channels TO aura_manager;
GRANT SELECT (restaurant_id, id, name, url, events, previous_secret_until, headers, max_retries, timeout_ms, active,
              disabled_reason, last_success_at, last_failure_at, failure_count, verified_at, created_at)
    ON aura.webhooks TO aura_manager;
GRANT UPDATE (url, events, headers, max_retries, timeout_ms, active, disabled_reason), DELETE ON aura.webhooks TO aura_manager;
GRANT SELECT, DELETE ON aura.notification_rules TO aura_manager;
GRANT UPDATE (enabled) ON aura.notification_rules TO aura_manager;
GRANT SELECT ON aura.rule_matches, aura.notifications, aura.delivery_log TO aura_manager;
GRANT SELECT ON aura.notifications, aura.delivery_log TO aura_reporting;
GRANT SELECT ON aura.inbox TO aura_staff;
GRANT SELECT ON aura.jobs TO aura_manager;
-- jobs are registered by the modules' SQL; admins only pause, reschedule or re-time them
GRANT UPDATE (enabled, every, next_run_at) ON aura.jobs TO aura_admin;
GRANT EXECUTE ON FUNCTION aura.webhook_sign(text, text, bigint, text), aura.emit_event(bigint, text, jsonb),
    aura.inbox_unread(bigint), aura.mark_read(bigint, bigint[]), aura._check_tenant(bigint),
    aura._context_restaurant(), aura._event_matches(text[], text), aura._valid_event_patterns(text[]),
    aura._valid_http_url(text), aura._event_severity(jsonb),
    aura._event_title(text, jsonb), aura._event_text(text, jsonb), aura._caller_is_admin()
    TO aura_staff;
GRANT EXECUTE ON FUNCTION aura.set_notification_channel(text, text, jsonb, text, boolean),
    aura.create_webhook(text, text, text[], jsonb, int, int), aura.rotate_webhook_secret(bigint, interval),
    aura.test_webhook(bigint), aura.retry_dead(bigint[]),
    aura.set_notification_rule(text, text[], jsonb, text, int[], int, int, time, time, interval, boolean, text[], text[], numeric, numeric),
    aura.worker_status(), aura._check_notification_channels(), aura._check_webhook_endpoints()
    TO aura_manager;
GRANT EXECUTE ON FUNCTION aura.run_digests(), aura.cleanup_notifications(), aura.reseal_notification_secrets(int) TO aura_admin;

-- Declared privileges (checked against the catalog by aura.privilege_mismatches)
INSERT INTO aura.privilege_matrix (object, kind, role, privileges) VALUES
    ('aura._channel_secret_key(text)', 'function', '-', ''),
    ('aura._channel_setting_secret(text, bigint)', 'function', '-', ''),
    ('aura._channel_settings(text, bigint)', 'function', '-', ''),
    ('aura._check_channel_config(text, jsonb, boolean)', 'function', '-', ''),
    ('aura._check_notification_channels()', 'function', 'aura_manager', 'EXECUTE'),
    ('aura._check_targets(jsonb, bigint)', 'function', '-', ''),
    ('aura._check_tenant(bigint)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura._check_webhook_endpoints()', 'function', 'aura_manager', 'EXECUTE'),
    ('aura._check_webhook_headers(jsonb)', 'function', '-', ''),
    ('aura._claim(integer, integer)', 'function', '-', ''),
    ('aura._context_restaurant()', 'function', 'aura_staff', 'EXECUTE'),
    ('aura._decrypt_secret(bytea, bigint)', 'function', '-', ''),
    ('aura._email_message(text, text, text, text, jsonb)', 'function', '-', ''),
    ('aura._encrypt_secret(text, bigint)', 'function', '-', ''),
    ('aura._event_matches(text[], text)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura._event_severity(jsonb)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura._event_text(text, jsonb)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura._event_title(text, jsonb)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura._emit_event(bigint, text, jsonb)', 'function', '-', ''),
    ('aura._form_encode(text)', 'function', '-', ''),
    ('aura._json_numeric(jsonb)', 'function', '-', ''),
    ('aura._max_attempts(integer)', 'function', '-', ''),
    ('aura._new_webhook_secret()', 'function', '-', ''),
    ('aura._queue_rule_targets(bigint, aura.notification_rules, text, jsonb, timestamp with time zone)', 'function', '-', ''),
    ('aura._quiet_until(aura.notification_rules, text)', 'function', '-', ''),
    ('aura._record(bigint[], bigint[], text[], integer[], text[], integer[])', 'function', '-', ''),
    ('aura._reject_change()', 'function', '-', ''),
    ('aura._render(bigint, bigint, integer, text, text, bigint, text, jsonb)', 'function', '-', ''),
    ('aura._retention_days()', 'function', '-', ''),
    ('aura._retry_delay(integer)', 'function', '-', ''),
    ('aura._slack_blocks(text, jsonb)', 'function', '-', ''),
    ('aura._valid_event_patterns(text[])', 'function', 'aura_staff', 'EXECUTE'),
    ('aura._valid_http_url(text)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura._wake_dispatcher()', 'function', '-', ''),
    ('aura._worker_shmem()', 'function', '-', ''),
    ('aura.cleanup_notifications()', 'function', 'aura_admin', 'EXECUTE'),
    ('aura.create_webhook(text, text, text[], jsonb, integer, integer)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.delivery_log', 'table', 'aura_manager', 'SELECT'),
    ('aura.delivery_log', 'table', 'aura_reporting', 'SELECT'),
    ('aura.delivery_log_id_seq', 'sequence', '-', ''),
    ('aura.emit_event(bigint, text, jsonb)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.events_id_seq', 'sequence', '-', ''),
    ('aura.inbox', 'table', 'aura_staff', 'SELECT'),
    ('aura.inbox_id_seq', 'sequence', '-', ''),
    ('aura.inbox_unread(bigint)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.jobs', 'table', 'aura_admin', 'UPDATE(enabled,every,next_run_at)'),
    ('aura.jobs', 'table', 'aura_manager', 'SELECT'),
    ('aura.mark_read(bigint, bigint[])', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.notification_channels', 'table', 'aura_manager', 'DELETE,SELECT(channel,config,created_at,disabled_reason,enabled,failure_count,id,last_failure_at,last_success_at,name,restaurant_id),UPDATE(enabled)'),
    ('aura.notification_channels_id_seq', 'sequence', '-', ''),
    ('aura.notification_rules', 'table', 'aura_manager', 'DELETE,SELECT,UPDATE(enabled)'),
    ('aura.notification_rules_id_seq', 'sequence', '-', ''),
    ('aura.notifications', 'table', 'aura_manager', 'SELECT'),
    ('aura.notifications', 'table', 'aura_reporting', 'SELECT'),
    ('aura.notifications_id_seq', 'sequence', '-', ''),
    ('aura.retry_dead(bigint[])', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.rotate_webhook_secret(bigint, interval)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.rule_matches', 'table', 'aura_manager', 'SELECT'),
    ('aura.rule_matches_id_seq', 'sequence', '-', ''),
    ('aura.run_digests()', 'function', 'aura_admin', 'EXECUTE'),
    ('aura.reseal_notification_secrets(integer)', 'function', 'aura_admin', 'EXECUTE'),
    ('aura.set_notification_channel(text, text, jsonb, text, boolean)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.set_notification_rule(text, text[], jsonb, text, integer[], integer, integer, time without time zone, time without time zone, interval, boolean, text[], text[], numeric, numeric)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.test_webhook(bigint)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.webhook_sign(text, text, bigint, text)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.webhooks', 'table', 'aura_manager', 'DELETE,SELECT(active,created_at,disabled_reason,events,failure_count,headers,id,last_failure_at,last_success_at,max_retries,name,previous_secret_until,restaurant_id,timeout_ms,url,verified_at),UPDATE(active,disabled_reason,events,headers,max_retries,timeout_ms,url)'),
    ('aura.webhooks_id_seq', 'sequence', '-', ''),
    ('aura.worker_status()', 'function', 'aura_manager', 'EXECUTE');
