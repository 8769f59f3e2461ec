-- Log retention for the sessions.cleanup job (platform maintenance, run by
-- platform administrators or the scheduler). Deletes audit and login log rows
-- older than the retention period, in every tenant, and says how many.
CREATE FUNCTION maintenance_purge_logs(p_retention_days integer)
RETURNS TABLE (audit_logs bigint, login_logs bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_cutoff timestamptz := now() - make_interval(days => greatest(p_retention_days, 7));
    v_audit bigint;
    v_login bigint;
BEGIN
    DELETE FROM audit_logs WHERE created_at < v_cutoff;
    GET DIAGNOSTICS v_audit = ROW_COUNT;
    DELETE FROM login_logs WHERE created_at < v_cutoff;
    GET DIAGNOSTICS v_login = ROW_COUNT;
    RETURN QUERY SELECT v_audit, v_login;
END $$;
REVOKE ALL ON FUNCTION maintenance_purge_logs(integer) FROM PUBLIC;

-- The application role may also execute maintenance_ functions.
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
               AND p.proname ~ '^(app|auth|platform|outbox|maintenance)_' LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, p_role);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION ferro_grant_app_privileges(text) FROM PUBLIC;
