-- The narrow, explicit ways across tenants, and the application role's grants.
--
-- Each SECURITY DEFINER function runs as the migration owner (a superuser or a
-- role with BYPASSRLS, checked by `migrate`), has a fixed search_path, takes
-- only typed parameters (no dynamic SQL), and returns only what its caller
-- needs. EXECUTE is revoked from PUBLIC by default (migration 1) and granted
-- to the application role by ferro_grant_app_privileges() below.
-- ARCHITECTURE.md lists each with why it is safe.

-- Login: find a user by name across tenants. Returns the hash for argon2
-- verification; the services cannot read password_hash otherwise.
CREATE FUNCTION auth_lookup_user(p_username text)
RETURNS TABLE (id uuid, username text, password_hash text, is_active boolean,
               is_platform_admin boolean, home_tenant_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT u.id, u.username, u.password_hash, u.is_active, u.is_platform_admin, u.home_tenant_id
    FROM users u WHERE lower(u.username) = lower(p_username)
$$;

-- Login and switch-tenant: the active tenants a user may enter. Members see
-- their active memberships; platform administrators see every active tenant.
CREATE FUNCTION auth_user_tenants(p_user_id uuid)
RETURNS TABLE (tenant_id uuid, slug text, name text, is_member boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT t.id, t.slug, t.name, (m.user_id IS NOT NULL)
    FROM tenants t
    LEFT JOIN memberships m ON m.tenant_id = t.id AND m.user_id = p_user_id AND m.is_active
    WHERE t.is_active
      AND (m.user_id IS NOT NULL
           OR EXISTS (SELECT 1 FROM users u WHERE u.id = p_user_id AND u.is_active AND u.is_platform_admin))
    ORDER BY t.slug
$$;

-- Login log rows are written before any tenant is bound.
CREATE FUNCTION auth_record_login(p_tenant_id uuid, p_user_id uuid, p_username text, p_ip inet,
                                  p_user_agent text, p_outcome text, p_reason text)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    INSERT INTO login_logs (tenant_id, user_id, username, ip, user_agent, outcome, reason)
    VALUES (p_tenant_id, p_user_id, left(p_username, 256), p_ip, left(p_user_agent, 512),
            p_outcome, left(p_reason, 500))
$$;

-- True when the user bound to this transaction is an active platform administrator.
CREATE FUNCTION app_is_platform_admin() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT EXISTS (SELECT 1 FROM users
                   WHERE id = app_current_user() AND is_active AND is_platform_admin)
$$;

-- Built-in roles of one tenant, with their permissions. Idempotent; adds
-- missing roles and grants, never removes what a tenant added.
CREATE FUNCTION internal_ensure_builtin_roles(p_tenant_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
BEGIN
    INSERT INTO roles (tenant_id, name, description, is_builtin) VALUES
        (p_tenant_id, 'admin', 'Everything within the tenant', true),
        (p_tenant_id, 'operator', 'Manage devices and run jobs', true),
        (p_tenant_id, 'viewer', 'Read only', true)
    ON CONFLICT (tenant_id, name) DO NOTHING;

    INSERT INTO role_permissions (tenant_id, role_id, permission)
    SELECT r.tenant_id, r.id, p.code
    FROM roles r
    JOIN permissions p ON NOT p.platform_only AND (
           r.name = 'admin'
        OR (r.name = 'operator' AND p.code IN ('devices:read', 'devices:write', 'jobs:read',
                                               'jobs:run', 'schedules:read', 'schedules:manage'))
        OR (r.name = 'viewer' AND p.code IN ('devices:read', 'jobs:read', 'schedules:read')))
    WHERE r.tenant_id = p_tenant_id AND r.is_builtin
    ON CONFLICT DO NOTHING;
END $$;

-- Creates a tenant (or finds it by slug) with its built-in roles.
CREATE FUNCTION internal_create_tenant(p_slug text, p_name text) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
DECLARE
    v_id uuid;
BEGIN
    INSERT INTO tenants (slug, name) VALUES (p_slug, p_name)
    ON CONFLICT (slug) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT id INTO v_id FROM tenants WHERE slug = p_slug;
    END IF;
    PERFORM internal_ensure_builtin_roles(v_id);
    RETURN v_id;
END $$;

-- Platform administration, for the bound user only if a platform administrator.
CREATE FUNCTION platform_create_tenant(p_slug text, p_name text)
RETURNS TABLE (id uuid, slug text, name text, is_active boolean,
               created_at timestamptz, updated_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
DECLARE
    v_id uuid;
BEGIN
    IF NOT app_is_platform_admin() THEN
        RAISE EXCEPTION 'platform administrator required' USING ERRCODE = '42501';
    END IF;
    INSERT INTO tenants (slug, name) VALUES (p_slug, p_name) RETURNING tenants.id INTO v_id;
    PERFORM internal_ensure_builtin_roles(v_id);
    RETURN QUERY SELECT t.id, t.slug, t.name, t.is_active, t.created_at, t.updated_at
                 FROM tenants t WHERE t.id = v_id;
END $$;

CREATE FUNCTION platform_list_tenants()
RETURNS TABLE (id uuid, slug text, name text, is_active boolean,
               created_at timestamptz, updated_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
BEGIN
    IF NOT app_is_platform_admin() THEN
        RAISE EXCEPTION 'platform administrator required' USING ERRCODE = '42501';
    END IF;
    RETURN QUERY SELECT t.id, t.slug, t.name, t.is_active, t.created_at, t.updated_at
                 FROM tenants t ORDER BY t.slug;
END $$;

-- Creates or updates the application role: a plain login role, never a
-- superuser, no BYPASSRLS, no CREATEDB/CREATEROLE/REPLICATION, member of
-- nothing. Refuses to touch an existing superuser (it would be demoted).
CREATE FUNCTION ferro_ensure_app_role(p_role text, p_password text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public
AS $$
DECLARE
    r record;
BEGIN
    SELECT rolsuper, rolbypassrls INTO r FROM pg_roles WHERE rolname = p_role;
    IF FOUND AND (r.rolsuper OR r.rolbypassrls) THEN
        RAISE EXCEPTION 'role % is a superuser or has BYPASSRLS; refusing to use it as the application role', p_role
            USING ERRCODE = '42501';
    END IF;
    IF NOT FOUND THEN
        EXECUTE format('CREATE ROLE %I LOGIN', p_role);
    END IF;
    EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT',
                   p_role);
    IF p_password IS NOT NULL THEN
        EXECUTE format('ALTER ROLE %I PASSWORD %L', p_role, p_password);
    END IF;
    -- Member of nothing: no inherited privileges, no SET ROLE to the owner.
    FOR r IN SELECT g.rolname FROM pg_auth_members am
             JOIN pg_roles g ON g.oid = am.roleid
             JOIN pg_roles m ON m.oid = am.member
             WHERE m.rolname = p_role LOOP
        EXECUTE format('REVOKE %I FROM %I', r.rolname, p_role);
    END LOOP;
END $$;

-- Grants the application role exactly what the services need. Re-created by
-- later migrations as tables are added; `migrate up` calls it after each run.
CREATE FUNCTION ferro_grant_app_privileges(p_role text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public
AS $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), p_role);
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', p_role);

    EXECUTE format('GRANT SELECT ON tenants, permissions, login_logs TO %I', p_role);
    -- Users: every column but the password hash is readable; the platform
    -- flag and home tenant cannot be written by the services.
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
                   'platform_create_tenant(text, text), platform_list_tenants() TO %I', p_role);
END $$;

REVOKE ALL ON FUNCTION app_touch_updated_at() FROM PUBLIC;
REVOKE ALL ON FUNCTION internal_ensure_builtin_roles(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION internal_create_tenant(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION ferro_ensure_app_role(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION ferro_grant_app_privileges(text) FROM PUBLIC;
