-- Hardening after review.
--
-- 1. SECURITY DEFINER functions search pg_temp last. Without it in their
--    search_path PostgreSQL searches pg_temp FIRST for tables, so a caller
--    could shadow, say, login_logs with a temporary table whose trigger runs
--    with the owner's privileges. The services also lose TEMP on the database.
-- 2. EXECUTE is revoked from PUBLIC on every function explicitly (a per-schema
--    ALTER DEFAULT PRIVILEGES does not remove the global default grant).
-- 3. auth_user_tenants() lists nothing for a deactivated user.
-- 4. A platform administrator's account can be changed only by itself or by
--    another platform administrator, whatever tenant roles the caller holds.

DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, public, pg_temp', f);
    END LOOP;
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f' LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END $$;

CREATE OR REPLACE FUNCTION auth_user_tenants(p_user_id uuid)
RETURNS TABLE (tenant_id uuid, slug text, name text, is_member boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT t.id, t.slug, t.name, (m.user_id IS NOT NULL)
    FROM users u
    JOIN tenants t ON t.is_active
    LEFT JOIN memberships m ON m.tenant_id = t.id AND m.user_id = u.id AND m.is_active
    WHERE u.id = p_user_id AND u.is_active
      AND (m.user_id IS NOT NULL OR u.is_platform_admin)
    ORDER BY t.slug
$$;
REVOKE ALL ON FUNCTION auth_user_tenants(uuid) FROM PUBLIC;

-- Whether a user is an active platform administrator (for re-checking a
-- session's cached flag).
CREATE FUNCTION auth_is_platform_admin(p_user_id uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM users WHERE id = p_user_id AND is_active AND is_platform_admin)
$$;
REVOKE ALL ON FUNCTION auth_is_platform_admin(uuid) FROM PUBLIC;

DROP POLICY users_update ON users;
CREATE POLICY users_update ON users FOR UPDATE
    USING (app_current_tenant() IS NOT NULL
           AND (id = app_current_user()
                OR (home_tenant_id = app_current_tenant()
                    AND (NOT is_platform_admin OR app_is_platform_admin()))))
    WITH CHECK (app_current_tenant() IS NOT NULL
           AND (id = app_current_user()
                OR (home_tenant_id = app_current_tenant()
                    AND (NOT is_platform_admin OR app_is_platform_admin()))));

CREATE OR REPLACE FUNCTION ferro_grant_app_privileges(p_role text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public, pg_temp
AS $$
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

    EXECUTE format('GRANT EXECUTE ON FUNCTION app_current_tenant(), app_current_user(), '
                   'app_is_platform_admin(), auth_lookup_user(text), auth_user_tenants(uuid), '
                   'auth_is_platform_admin(uuid), '
                   'auth_record_login(uuid, uuid, text, inet, text, text, text), '
                   'platform_create_tenant(text, text), platform_list_tenants(), '
                   'platform_update_tenant(uuid, text, boolean) TO %I', p_role);
END $$;
REVOKE ALL ON FUNCTION ferro_grant_app_privileges(text) FROM PUBLIC;
