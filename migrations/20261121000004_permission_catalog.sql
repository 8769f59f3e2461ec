-- The permission catalog. ferro_auth::Permission must list the same codes
-- (a test compares them).
INSERT INTO permissions (code, description, platform_only) VALUES
    ('tenants:manage',   'Create and list tenants (platform administrators)', true),
    ('users:read',       'List and view users of the tenant', false),
    ('users:manage',     'Create, update and deactivate users; set their roles', false),
    ('roles:read',       'List and view roles', false),
    ('roles:manage',     'Create, update and delete custom roles', false),
    ('devices:read',     'List and view devices', false),
    ('devices:write',    'Create, update and delete devices', false),
    ('jobs:read',        'List and view jobs, their results and events', false),
    ('jobs:run',         'Enqueue and cancel jobs', false),
    ('schedules:read',   'List and view schedules and their runs', false),
    ('schedules:manage', 'Create, update, enable, disable and delete schedules', false),
    ('audit:read',       'Read the audit log and the login log', false)
ON CONFLICT (code) DO UPDATE
    SET description = EXCLUDED.description, platform_only = EXCLUDED.platform_only;
