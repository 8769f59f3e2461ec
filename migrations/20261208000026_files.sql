-- Uploaded files (issue 25): the record of each file a tenant stored. The
-- bytes are on disk (`UPLOADS_DIR/{tenant}/{id}`); a record is written in
-- the same transaction that makes the file visible, and never changed.
CREATE TABLE files (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The client's name for it, to show: never a path.
    name         text NOT NULL,
    size         bigint NOT NULL,
    sha256       text NOT NULL,
    content_type text NOT NULL,
    created_by   uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT files_tenant_id_key UNIQUE (tenant_id, id),
    CONSTRAINT files_name_check CHECK (
        char_length(name) BETWEEN 1 AND 255 AND name !~ '[/\\[:cntrl:]]'),
    CONSTRAINT files_size_check CHECK (size >= 0),
    CONSTRAINT files_sha256_check CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT files_content_type_check CHECK (char_length(content_type) BETWEEN 1 AND 100)
);
CREATE INDEX files_tenant_created_idx ON files (tenant_id, created_at DESC, id DESC);
ALTER TABLE files ENABLE ROW LEVEL SECURITY;
ALTER TABLE files FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON files USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());

-- The application role reads, writes and deletes file records (it never
-- updates one).
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
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO %I', p_role);

    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f'
               AND p.proname ~ '^(app|auth|platform|outbox|maintenance|scheduler)_' LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, p_role);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION ferro_grant_app_privileges(text) FROM PUBLIC;
