-- The scheduler reads schedules across tenants through these functions only;
-- it fires each one inside the schedule's own tenant, like any other writer.

-- Enabled schedules whose next run is due, oldest first.
CREATE FUNCTION scheduler_due(p_limit integer)
RETURNS TABLE (id uuid, tenant_id uuid, next_run_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT s.id, s.tenant_id, s.next_run_at FROM schedules s
    WHERE s.enabled AND s.next_run_at <= now()
    ORDER BY s.next_run_at
    LIMIT greatest(p_limit, 1)
$$;

-- When the earliest enabled schedule is next due (NULL: none).
CREATE FUNCTION scheduler_next_due() RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT min(next_run_at) FROM schedules WHERE enabled
$$;

-- Every schedule, for `scheduler list`.
CREATE FUNCTION scheduler_overview()
RETURNS TABLE (id uuid, tenant_slug text, name text, cron text, timezone text, kind text,
               enabled boolean, misfire_policy text, next_run_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT s.id, t.slug, s.name, s.cron, s.timezone, s.kind, s.enabled, s.misfire_policy,
           s.next_run_at
    FROM schedules s JOIN tenants t ON t.id = s.tenant_id
    ORDER BY t.slug, s.name
$$;

REVOKE ALL ON FUNCTION scheduler_due(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION scheduler_next_due() FROM PUBLIC;
REVOKE ALL ON FUNCTION scheduler_overview() FROM PUBLIC;

-- Schedules from the configuration file are kept in the schedules table of the
-- tenant `default` (so that they share the slot key that makes fires unique),
-- marked as such; the api shows them but does not let tenants edit them.
ALTER TABLE schedules ADD COLUMN source text NOT NULL DEFAULT 'api'
    CONSTRAINT schedules_source_check CHECK (source IN ('api', 'config'));

-- The application role may also execute scheduler_ functions.
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
                   'membership_roles, devices, schedules, job_outbox TO %I', p_role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON jobs TO %I', p_role);
    EXECUTE format('GRANT SELECT, INSERT ON job_results, audit_logs TO %I', p_role);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO %I', p_role);

    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f'
               AND p.proname ~ '^(app|auth|platform|outbox|maintenance|scheduler)_' LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, p_role);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION ferro_grant_app_privileges(text) FROM PUBLIC;
