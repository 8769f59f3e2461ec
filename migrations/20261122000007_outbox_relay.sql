-- The outbox relay: publishes what a transaction enqueued, across tenants.
-- Two narrow functions (see ARCHITECTURE.md, "Crossing tenants"); neither
-- takes SQL or returns anything but outbox ids and task envelopes.

-- Claims up to p_limit due, unpublished rows. Each claimed row becomes due
-- again only after p_lease_seconds, so a relay that dies mid-batch delays
-- those rows but loses none, and two relays never claim the same row
-- (FOR UPDATE SKIP LOCKED).
CREATE FUNCTION outbox_claim(p_limit integer, p_lease_seconds integer)
RETURNS TABLE (id bigint, payload jsonb)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
    UPDATE job_outbox o
    SET available_at = now() + make_interval(secs => greatest(p_lease_seconds, 1)),
        publish_attempts = o.publish_attempts + 1
    WHERE o.id IN (SELECT d.id FROM job_outbox d
                   WHERE d.published_at IS NULL AND d.available_at <= now()
                   ORDER BY d.available_at, d.id
                   LIMIT least(greatest(p_limit, 1), 1000)
                   FOR UPDATE SKIP LOCKED)
    RETURNING o.id, o.payload
$$;

CREATE FUNCTION outbox_mark_published(p_ids bigint[]) RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH done AS (
        UPDATE job_outbox SET published_at = now(), last_error = NULL
        WHERE id = ANY(p_ids) AND published_at IS NULL RETURNING 1)
    SELECT count(*)::integer FROM done
$$;

-- A record that could not be published (or was claimed but not tried, the
-- broker being away) comes due again in a second rather than after the lease.
CREATE FUNCTION outbox_mark_failed(p_id bigint, p_error text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
    UPDATE job_outbox SET last_error = left(p_error, 500), available_at = now() + interval '1 second'
    WHERE id = p_id AND published_at IS NULL
$$;

REVOKE ALL ON FUNCTION outbox_claim(integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox_mark_published(bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox_mark_failed(bigint, text) FROM PUBLIC;

-- From now on the application role may execute exactly the functions whose
-- names start with app_, auth_, platform_ or outbox_ (internal_ and ferro_
-- ones stay the owner's), so new migrations need not re-list them here.
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
               AND p.proname ~ '^(app|auth|platform|outbox)_' LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, p_role);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION ferro_grant_app_privileges(text) FROM PUBLIC;
