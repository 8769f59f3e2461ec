-- Ferrostack schema: tables, constraints and indexes.
-- Row-level security is switched on in the next migration; grants to the
-- application role are made by ferro_grant_app_privileges() (migration 3),
-- which `migrate up` calls after every run.

-- Functions created by the migration owner are not executable by everyone.
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- The tenant and user bound to the current transaction by the services
-- (set_config('app.tenant_id', ..., true)). NULL when unset, so every policy
-- comparing against them fails closed.
CREATE FUNCTION app_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.tenant_id', true), '')::uuid $$;

CREATE FUNCTION app_current_user() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;

CREATE FUNCTION app_touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;

CREATE TABLE tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL,
    name        text NOT NULL,
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenants_slug_key UNIQUE (slug),
    CONSTRAINT tenants_slug_format CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    CONSTRAINT tenants_name_length CHECK (char_length(btrim(name)) BETWEEN 1 AND 200)
);

-- Users are global (one login, many tenants through memberships); each has a
-- home tenant, the one whose administrators created and may manage it.
CREATE TABLE users (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    home_tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    username            text NOT NULL,
    email               text,
    password_hash       text NOT NULL,
    is_active           boolean NOT NULL DEFAULT true,
    is_platform_admin   boolean NOT NULL DEFAULT false,
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_username_format CHECK (username ~ '^[A-Za-z0-9._@-]{3,64}$'),
    CONSTRAINT users_email_format CHECK (
        email IS NULL OR (char_length(email) <= 254 AND email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$')),
    CONSTRAINT users_password_hash_argon2id CHECK (password_hash LIKE '$argon2id$%')
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE INDEX users_home_tenant_idx ON users (home_tenant_id, lower(username));

CREATE TABLE memberships (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

-- The permission catalog is global; roles and their grants are per tenant.
CREATE TABLE permissions (
    code          text PRIMARY KEY,
    description   text NOT NULL,
    platform_only boolean NOT NULL DEFAULT false,
    CONSTRAINT permissions_code_format CHECK (code ~ '^[a-z]+:[a-z]+$')
);

CREATE TABLE roles (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    is_builtin  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT roles_tenant_name_key UNIQUE (tenant_id, name),
    CONSTRAINT roles_tenant_id_key UNIQUE (tenant_id, id),
    CONSTRAINT roles_name_format CHECK (name ~ '^[a-z][a-z0-9_-]{1,62}$'),
    CONSTRAINT roles_description_length CHECK (char_length(description) <= 500)
);

CREATE TABLE role_permissions (
    tenant_id   uuid NOT NULL,
    role_id     uuid NOT NULL,
    permission  text NOT NULL REFERENCES permissions (code) ON DELETE CASCADE,
    PRIMARY KEY (role_id, permission),
    FOREIGN KEY (tenant_id, role_id) REFERENCES roles (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX role_permissions_tenant_role_idx ON role_permissions (tenant_id, role_id);

CREATE TABLE membership_roles (
    tenant_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    role_id     uuid NOT NULL,
    PRIMARY KEY (tenant_id, user_id, role_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES memberships (tenant_id, user_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, role_id) REFERENCES roles (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX membership_roles_role_idx ON membership_roles (tenant_id, role_id);

CREATE TABLE devices (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            text NOT NULL,
    protocol        text NOT NULL,
    host            text NOT NULL,
    port            integer NOT NULL,
    tags            text[] NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'unknown',
    snmp_version    text,
    snmp_community  text,
    last_seen_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT devices_tenant_name_key UNIQUE (tenant_id, name),
    CONSTRAINT devices_tenant_id_key UNIQUE (tenant_id, id),
    CONSTRAINT devices_name_length CHECK (char_length(btrim(name)) BETWEEN 1 AND 200),
    CONSTRAINT devices_protocol_check CHECK (protocol IN ('snmp', 'http')),
    CONSTRAINT devices_host_format CHECK (host ~ '^[A-Za-z0-9.:_\[\]-]{1,253}$'),
    CONSTRAINT devices_port_range CHECK (port BETWEEN 1 AND 65535),
    CONSTRAINT devices_status_check CHECK (status IN ('unknown', 'up', 'down')),
    CONSTRAINT devices_tags_count CHECK (cardinality(tags) <= 32),
    CONSTRAINT devices_snmp_version_check CHECK (snmp_version IS NULL OR snmp_version IN ('v1', 'v2c')),
    CONSTRAINT devices_snmp_settings CHECK (
        protocol <> 'snmp' OR (snmp_version IS NOT NULL AND snmp_community IS NOT NULL)),
    CONSTRAINT devices_snmp_community_length CHECK (
        snmp_community IS NULL OR char_length(snmp_community) BETWEEN 1 AND 128)
);
CREATE INDEX devices_tenant_created_idx ON devices (tenant_id, created_at, id);
CREATE INDEX devices_tenant_protocol_idx ON devices (tenant_id, protocol, created_at, id);
CREATE INDEX devices_tags_idx ON devices USING gin (tags);

CREATE TABLE schedules (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            text NOT NULL,
    cron            text NOT NULL,
    timezone        text NOT NULL DEFAULT 'UTC',
    kind            text NOT NULL,
    device_id       uuid,
    params          jsonb NOT NULL DEFAULT '{}',
    enabled         boolean NOT NULL DEFAULT true,
    misfire_policy  text NOT NULL DEFAULT 'fire_once',
    last_run_at     timestamptz,
    next_run_at     timestamptz,
    created_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedules_tenant_name_key UNIQUE (tenant_id, name),
    CONSTRAINT schedules_tenant_id_key UNIQUE (tenant_id, id),
    CONSTRAINT schedules_device_fkey FOREIGN KEY (tenant_id, device_id)
        REFERENCES devices (tenant_id, id) ON DELETE SET NULL (device_id),
    CONSTRAINT schedules_name_length CHECK (char_length(btrim(name)) BETWEEN 1 AND 200),
    CONSTRAINT schedules_cron_length CHECK (char_length(cron) BETWEEN 9 AND 200),
    CONSTRAINT schedules_timezone_length CHECK (char_length(timezone) BETWEEN 1 AND 64),
    CONSTRAINT schedules_kind_format CHECK (kind ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
    CONSTRAINT schedules_params_object CHECK (jsonb_typeof(params) = 'object'),
    CONSTRAINT schedules_misfire_policy_check CHECK (misfire_policy IN ('fire_once', 'skip'))
);
CREATE INDEX schedules_tenant_created_idx ON schedules (tenant_id, created_at, id);
CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE enabled;

CREATE TABLE jobs (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind                text NOT NULL,
    device_id           uuid,
    params              jsonb NOT NULL DEFAULT '{}',
    status              text NOT NULL DEFAULT 'queued',
    progress            smallint NOT NULL DEFAULT 0,
    attempts            integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL DEFAULT 3,
    error               text,
    schedule_id         uuid,
    scheduled_for       timestamptz,
    idempotency_key     text,
    created_by          uuid REFERENCES users (id) ON DELETE SET NULL,
    cancel_requested_at timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    CONSTRAINT jobs_tenant_id_key UNIQUE (tenant_id, id),
    CONSTRAINT jobs_device_fkey FOREIGN KEY (tenant_id, device_id)
        REFERENCES devices (tenant_id, id) ON DELETE SET NULL (device_id),
    CONSTRAINT jobs_schedule_fkey FOREIGN KEY (tenant_id, schedule_id)
        REFERENCES schedules (tenant_id, id) ON DELETE SET NULL (schedule_id),
    CONSTRAINT jobs_kind_format CHECK (kind ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
    CONSTRAINT jobs_params_object CHECK (jsonb_typeof(params) = 'object'),
    CONSTRAINT jobs_status_check CHECK (
        status IN ('queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT jobs_progress_range CHECK (progress BETWEEN 0 AND 100),
    CONSTRAINT jobs_attempts_range CHECK (attempts >= 0 AND attempts <= max_attempts + 1),
    CONSTRAINT jobs_max_attempts_range CHECK (max_attempts BETWEEN 1 AND 100),
    CONSTRAINT jobs_idempotency_key_length CHECK (
        idempotency_key IS NULL OR char_length(idempotency_key) BETWEEN 1 AND 255),
    CONSTRAINT jobs_finished_when_final CHECK (
        (finished_at IS NOT NULL) = (status IN ('succeeded', 'failed', 'cancelled')))
);
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX jobs_schedule_slot_key ON jobs (schedule_id, scheduled_for)
    WHERE schedule_id IS NOT NULL;
CREATE INDEX jobs_tenant_created_idx ON jobs (tenant_id, created_at DESC, id DESC);
CREATE INDEX jobs_tenant_status_idx ON jobs (tenant_id, status, created_at DESC, id DESC);
CREATE INDEX jobs_tenant_kind_idx ON jobs (tenant_id, kind, created_at DESC, id DESC);
CREATE INDEX jobs_tenant_device_idx ON jobs (tenant_id, device_id, created_at DESC, id DESC)
    WHERE device_id IS NOT NULL;
CREATE INDEX jobs_tenant_schedule_idx ON jobs (tenant_id, schedule_id, created_at DESC, id DESC)
    WHERE schedule_id IS NOT NULL;
CREATE INDEX jobs_unfinished_idx ON jobs (status, updated_at)
    WHERE status IN ('queued', 'running', 'retrying');

CREATE TABLE job_results (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL,
    job_id      uuid NOT NULL,
    attempt     integer NOT NULL DEFAULT 1,
    data        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT job_results_job_fkey FOREIGN KEY (tenant_id, job_id)
        REFERENCES jobs (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT job_results_attempt_range CHECK (attempt >= 1)
);
CREATE INDEX job_results_job_idx ON job_results (tenant_id, job_id, created_at, id);

-- Transactional outbox: a job and its outbox row commit together; a relay
-- publishes pending rows to the broker after commit and marks them.
CREATE TABLE job_outbox (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id         uuid NOT NULL,
    job_id            uuid NOT NULL,
    payload           jsonb NOT NULL,
    available_at      timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    published_at      timestamptz,
    publish_attempts  integer NOT NULL DEFAULT 0,
    last_error        text,
    CONSTRAINT job_outbox_job_fkey FOREIGN KEY (tenant_id, job_id)
        REFERENCES jobs (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT job_outbox_payload_object CHECK (jsonb_typeof(payload) = 'object')
);
CREATE INDEX job_outbox_pending_idx ON job_outbox (available_at, id) WHERE published_at IS NULL;
CREATE INDEX job_outbox_tenant_job_idx ON job_outbox (tenant_id, job_id);

CREATE TABLE audit_logs (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid REFERENCES users (id) ON DELETE SET NULL,
    method      text NOT NULL,
    route       text NOT NULL,
    status      smallint NOT NULL,
    latency_ms  integer NOT NULL,
    ip          inet,
    user_agent  text,
    request_id  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_logs_method_check CHECK (method IN ('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS')),
    CONSTRAINT audit_logs_status_range CHECK (status BETWEEN 100 AND 599),
    CONSTRAINT audit_logs_latency_range CHECK (latency_ms >= 0),
    CONSTRAINT audit_logs_route_length CHECK (char_length(route) <= 500)
);
CREATE INDEX audit_logs_tenant_created_idx ON audit_logs (tenant_id, created_at DESC, id DESC);
CREATE INDEX audit_logs_created_idx ON audit_logs (created_at);

-- Login attempts; tenant and user are unknown for a wrong user name.
CREATE TABLE login_logs (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid REFERENCES users (id) ON DELETE SET NULL,
    username    text NOT NULL,
    ip          inet,
    user_agent  text,
    outcome     text NOT NULL,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT login_logs_outcome_check CHECK (outcome IN ('success', 'failure', 'throttled')),
    CONSTRAINT login_logs_username_length CHECK (char_length(username) <= 256)
);
CREATE INDEX login_logs_tenant_created_idx ON login_logs (tenant_id, created_at DESC, id DESC);
CREATE INDEX login_logs_created_idx ON login_logs (created_at);

CREATE TRIGGER tenants_touch BEFORE UPDATE ON tenants FOR EACH ROW EXECUTE FUNCTION app_touch_updated_at();
CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION app_touch_updated_at();
CREATE TRIGGER roles_touch BEFORE UPDATE ON roles FOR EACH ROW EXECUTE FUNCTION app_touch_updated_at();
CREATE TRIGGER devices_touch BEFORE UPDATE ON devices FOR EACH ROW EXECUTE FUNCTION app_touch_updated_at();
CREATE TRIGGER schedules_touch BEFORE UPDATE ON schedules FOR EACH ROW EXECUTE FUNCTION app_touch_updated_at();
CREATE TRIGGER jobs_touch BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION app_touch_updated_at();
