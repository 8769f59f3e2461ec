-- Platform administration: rename or (de)activate a tenant. Deactivated
-- tenants disappear from auth_user_tenants(), so nobody can log into them.
CREATE FUNCTION platform_update_tenant(p_id uuid, p_name text, p_is_active boolean)
RETURNS TABLE (id uuid, slug text, name text, is_active boolean,
               created_at timestamptz, updated_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
BEGIN
    IF NOT app_is_platform_admin() THEN
        RAISE EXCEPTION 'platform administrator required' USING ERRCODE = '42501';
    END IF;
    RETURN QUERY
    UPDATE tenants t SET name = coalesce(p_name, t.name), is_active = coalesce(p_is_active, t.is_active)
    WHERE t.id = p_id
    RETURNING t.id, t.slug, t.name, t.is_active, t.created_at, t.updated_at;
END $$;
REVOKE ALL ON FUNCTION platform_update_tenant(uuid, text, boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION ferro_grant_app_privileges(p_role text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public
AS $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), p_role);
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
                   'auth_record_login(uuid, uuid, text, inet, text, text, text), '
                   'platform_create_tenant(text, text), platform_list_tenants(), '
                   'platform_update_tenant(uuid, text, boolean) TO %I', p_role);
END $$;
