-- The built-in schedules from the scheduler's configuration file live in the
-- tenant `default`; the scheduler finds it here.
CREATE FUNCTION scheduler_default_tenant() RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT id FROM tenants WHERE slug = 'default'
$$;
REVOKE ALL ON FUNCTION scheduler_default_tenant() FROM PUBLIC;

-- devices.poll (platform maintenance): the SNMP devices of every tenant, and
-- recording what a poll saw. Nothing else about a device is reachable here.
CREATE FUNCTION maintenance_snmp_devices()
RETURNS TABLE (id uuid, host text, port integer, snmp_version text, snmp_community text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT d.id, d.host, d.port, d.snmp_version, d.snmp_community
    FROM devices d JOIN tenants t ON t.id = d.tenant_id
    WHERE d.protocol = 'snmp' AND t.is_active
    ORDER BY d.tenant_id, d.id
$$;

CREATE FUNCTION maintenance_device_polled(p_id uuid, p_up boolean) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
    UPDATE devices
    SET status = CASE WHEN p_up THEN 'up' ELSE 'down' END,
        last_seen_at = CASE WHEN p_up THEN now() ELSE last_seen_at END
    WHERE id = p_id
$$;

REVOKE ALL ON FUNCTION maintenance_snmp_devices() FROM PUBLIC;
REVOKE ALL ON FUNCTION maintenance_device_polled(uuid, boolean) FROM PUBLIC;
