-- Tenancy is enforced here, not in the application. Every table has RLS
-- ENABLED and FORCED (so it binds the table owner too, unless that owner is a
-- superuser or has BYPASSRLS). Policies compare against app_current_tenant(),
-- which is NULL when no tenant is bound: no tenant, no rows.

-- Tenant-scoped tables: read and write only the bound tenant's rows.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'memberships', 'roles', 'role_permissions', 'membership_roles', 'devices',
        'schedules', 'jobs', 'job_results', 'job_outbox', 'audit_logs'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = app_current_tenant()) '
            'WITH CHECK (tenant_id = app_current_tenant())', t);
    END LOOP;
END $$;

-- Login log: the bound tenant may read its own rows; rows are written only
-- through auth_record_login(), since a failed login has no tenant yet.
ALTER TABLE login_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE login_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON login_logs FOR SELECT USING (tenant_id = app_current_tenant());

-- Tenants: a bound tenant sees itself. Creating and listing tenants goes
-- through the platform_* functions.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_self ON tenants FOR SELECT USING (id = app_current_tenant());

-- Users: visible to a tenant if they are its members or it is their home
-- tenant (and a user always sees themself); created only into the bound
-- tenant as home; updated by their home tenant or by themselves.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY users_select ON users FOR SELECT USING (
    app_current_tenant() IS NOT NULL AND (
        id = app_current_user()
        OR home_tenant_id = app_current_tenant()
        OR EXISTS (SELECT 1 FROM memberships m
                   WHERE m.user_id = users.id AND m.tenant_id = app_current_tenant())));
CREATE POLICY users_insert ON users FOR INSERT WITH CHECK (home_tenant_id = app_current_tenant());
CREATE POLICY users_update ON users FOR UPDATE
    USING (app_current_tenant() IS NOT NULL
           AND (home_tenant_id = app_current_tenant() OR id = app_current_user()))
    WITH CHECK (app_current_tenant() IS NOT NULL
           AND (home_tenant_id = app_current_tenant() OR id = app_current_user()));

-- The permission catalog is global and read-only for the services.
ALTER TABLE permissions ENABLE ROW LEVEL SECURITY;
ALTER TABLE permissions FORCE ROW LEVEL SECURITY;
CREATE POLICY catalog_read ON permissions FOR SELECT USING (true);
