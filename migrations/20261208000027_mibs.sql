-- Compiled MIBs (issue 25). `mib_modules`: each module a tenant uploaded,
-- with its text (a compile reads every module of the tenant again, so an
-- import resolves against what was uploaded before) and what the last
-- compile said of it. `mib_nodes`: the tenant's OID tree as the last compile
-- resolved it, the built-in base modules' nodes included, one row a node,
-- replaced whole by each compile.
CREATE TABLE mib_modules (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,
    status      text NOT NULL,
    -- [{severity, code, message}]
    diagnostics jsonb NOT NULL DEFAULT '[]',
    imports     text[] NOT NULL DEFAULT '{}',
    objects     integer NOT NULL DEFAULT 0,
    source      text NOT NULL,
    -- The upload it came from (not a foreign key: the file may be deleted).
    file_id     uuid,
    compiled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name),
    CONSTRAINT mib_modules_status_check CHECK (status IN ('ok', 'error')),
    CONSTRAINT mib_modules_name_check CHECK (char_length(name) BETWEEN 1 AND 255)
);

CREATE TABLE mib_nodes (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    oid          text NOT NULL,
    -- The parent's OID ('' for the arcs under the root).
    parent_oid   text NOT NULL,
    arc          bigint NOT NULL,
    name         text NOT NULL,
    module       text,
    kind         text NOT NULL,
    syntax       text,
    base_type    text,
    display_hint text,
    -- [{label, value}], ["0..255", ...], ["0..64", ...]
    enums        jsonb,
    ranges       jsonb,
    sizes        jsonb,
    access       text,
    status       text,
    description  text,
    units        text,
    -- [{name, implied}]; the row it augments
    indexes      jsonb,
    augments     text,
    PRIMARY KEY (tenant_id, oid)
);
CREATE INDEX mib_nodes_children_idx ON mib_nodes (tenant_id, parent_oid, arc);
CREATE INDEX mib_nodes_name_idx ON mib_nodes (tenant_id, name);
ALTER TABLE mib_modules ENABLE ROW LEVEL SECURITY;
ALTER TABLE mib_modules FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mib_modules USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
ALTER TABLE mib_nodes ENABLE ROW LEVEL SECURITY;
ALTER TABLE mib_nodes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mib_nodes USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());

-- The application role reads and writes both.
CREATE OR REPLACE FUNCTION ferro_grant_app_privileges(p_role text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    f regprocedure;
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), p_role);
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM %I', current_database(), p_role);
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', p_role);

    EXECUTE format('GRANT SELECT ON tenants, permissions, login_logs TO %I', p_role);
    EXECUTE format('GRANT SELECT (id, home_tenant_id, username, email, is_active, is_platform_admin, '
                   'password_changed_at, created_at, updated_at) ON users TO %I', p_role);
    EXECUTE format('GRANT INSERT (id, home_tenant_id, username, email, password_hash, is_active) '
                   'ON users TO %I', p_role);
    EXECUTE format('GRANT UPDATE (username, email, password_hash, is_active, password_changed_at) '
                   'ON users TO %I', p_role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON memberships, roles, role_permissions, '
                   'membership_roles, devices, schedules, job_outbox, jobs TO %I', p_role);
    EXECUTE format('GRANT SELECT, INSERT ON job_results, audit_logs, workflows TO %I', p_role);
    EXECUTE format('GRANT DELETE ON job_results TO %I', p_role);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON job_attempts TO %I', p_role);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON files TO %I', p_role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON mib_modules, mib_nodes TO %I', p_role);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO %I', p_role);

    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f'
               AND p.proname ~ '^(app|auth|platform|outbox|maintenance|scheduler)_' LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, p_role);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION ferro_grant_app_privileges(text) FROM PUBLIC;
