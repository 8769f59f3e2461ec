//! The schema, row-level security and the application role, against the
//! real PostgreSQL. Each test has its own database (ferro_testkit::TestDb).

use ferro_auth::{Permission, password};
use ferro_db::{DbError, TenantCtx};
use ferro_testkit::{ADMIN_PASSWORD, ADMIN_USERNAME, TestDb};
use sqlx::{Connection, Executor, Row};
use uuid::Uuid;

/// Tables every tenant-scoped query goes through.
const TENANT_TABLES: &[&str] = &[
    "memberships",
    "roles",
    "role_permissions",
    "membership_roles",
    "devices",
    "schedules",
    "jobs",
    "job_results",
    "job_outbox",
    "audit_logs",
    "login_logs",
];

async fn insert_device(db: &ferro_db::Db, tenant: Uuid, name: &str) -> Uuid {
    let mut tx = db.begin(TenantCtx::new(tenant, None)).await.unwrap();
    let id = sqlx::query_scalar(
        "INSERT INTO devices (tenant_id, name, protocol, host, port, snmp_version, snmp_community) \
         VALUES (app_current_tenant(), $1, 'snmp', '127.0.0.1', 161, 'v2c', 'public') RETURNING id",
    )
    .bind(name)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

#[tokio::test]
async fn up_is_idempotent() {
    let db = TestDb::new().await;
    assert_eq!(
        db.report.migrations_applied,
        ferro_schema::MIGRATOR.iter().count()
    );
    assert_eq!(db.report.admin, ferro_schema::AdminSeed::Created);

    let owner = db.owner().await;
    let fingerprint = "SELECT \
        (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace), \
        (SELECT count(*) FROM pg_policy), \
        (SELECT count(*) FROM tenants), (SELECT count(*) FROM users), \
        (SELECT count(*) FROM roles), (SELECT count(*) FROM role_permissions), \
        (SELECT count(*) FROM memberships), (SELECT count(*) FROM membership_roles), \
        (SELECT string_agg(password_hash, ',') FROM users)";
    let before: (i64, i64, i64, i64, i64, i64, i64, i64, String) =
        sqlx::query_as(fingerprint).fetch_one(&owner).await.unwrap();

    let again = ferro_schema::up(&db.migrate_config()).await.unwrap();
    assert_eq!(again.migrations_applied, 0);
    assert_eq!(again.admin, ferro_schema::AdminSeed::Unchanged);
    assert_eq!(again.default_tenant_id, db.default_tenant());
    assert!(!again.database_created);

    let after: (i64, i64, i64, i64, i64, i64, i64, i64, String) =
        sqlx::query_as(fingerprint).fetch_one(&owner).await.unwrap();
    assert_eq!(before, after, "a second `up` changed the database");
    assert_eq!(
        (after.2, after.3, after.4),
        (1, 1, 3),
        "one tenant, one admin, three roles"
    );

    let states = ferro_schema::status(&db.migrate_config()).await.unwrap();
    assert!(states.iter().all(|s| s.applied && !s.checksum_mismatch));
}

#[tokio::test]
async fn every_table_has_rls_enabled_and_forced_with_tenant_policies() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let rows = sqlx::query(
        "SELECT c.relname::text AS name, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced, \
           EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' \
                   AND NOT a.attisdropped) AS has_tenant, \
           (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid \
              AND pg_get_expr(p.polqual, p.polrelid) LIKE '%app_current_tenant()%') AS tenant_policies \
         FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' \
           AND c.relname <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    assert!(rows.len() >= 14, "expected every table, got {}", rows.len());
    let mut with_tenant = Vec::new();
    for row in &rows {
        let name: String = row.get("name");
        assert!(row.get::<bool, _>("enabled"), "{name}: RLS not enabled");
        assert!(row.get::<bool, _>("forced"), "{name}: RLS not forced");
        if row.get::<bool, _>("has_tenant") {
            assert!(
                row.get::<i64, _>("tenant_policies") >= 1,
                "{name}: no tenant policy"
            );
            with_tenant.push(name);
        }
    }
    for t in TENANT_TABLES {
        assert!(with_tenant.iter().any(|n| n == t), "{t} has no tenant_id");
    }
}

#[tokio::test]
async fn app_role_sees_no_rows_without_a_tenant() {
    let db = TestDb::new().await;
    let app = db.app().await;
    insert_device(&app, db.default_tenant(), "router-1").await;

    let mut conn = db.app_conn().await;
    for table in TENANT_TABLES.iter().chain(&["tenants", "users"]) {
        let sql = format!("SELECT count(*) FROM {table}");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} leaks {n} rows with no tenant bound");
    }
    // The owner sees that the rows exist.
    let owner = db.owner().await;
    let roles: i64 = sqlx::query_scalar("SELECT count(*) FROM roles")
        .fetch_one(&owner)
        .await
        .unwrap();
    let devices: i64 = sqlx::query_scalar("SELECT count(*) FROM devices")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!((roles, devices), (3, 1));

    // A transaction-local binding ends with the transaction.
    conn.execute("BEGIN").await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(db.default_tenant().to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    let inside: i64 = sqlx::query_scalar("SELECT count(*) FROM devices")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.execute("COMMIT").await.unwrap();
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM devices")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!((inside, after), (1, 0));
}

#[tokio::test]
async fn each_tenant_sees_only_its_own_rows() {
    let db = TestDb::new().await;
    let app = db.app().await;
    let acme = db.create_tenant("acme").await;
    let default = db.default_tenant();
    insert_device(&app, default, "d-1").await;
    insert_device(&app, acme, "a-1").await;
    insert_device(&app, acme, "a-2").await;

    for (tenant, expected) in [(default, vec!["d-1"]), (acme, vec!["a-1", "a-2"])] {
        let mut tx = app.begin(TenantCtx::new(tenant, None)).await.unwrap();
        // No tenant filter on purpose: RLS must supply it.
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM devices ORDER BY name")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        assert_eq!(names, expected);
        let tenants: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM tenants")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        assert_eq!(tenants, vec![tenant]);
        let roles: i64 = sqlx::query_scalar("SELECT count(*) FROM roles")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(roles, 3, "built-in roles of this tenant only");
    }
}

#[tokio::test]
async fn app_role_cannot_write_into_another_tenant() {
    let db = TestDb::new().await;
    let app = db.app().await;
    let acme = db.create_tenant("acme").await;
    let default = db.default_tenant();
    let acme_device = insert_device(&app, acme, "a-1").await;
    let own_device = insert_device(&app, default, "d-1").await;

    let ctx = TenantCtx::new(default, None);
    // Insert a row labelled with another tenant.
    let mut tx = app.begin(ctx).await.unwrap();
    let err = sqlx::query(
        "INSERT INTO devices (tenant_id, name, protocol, host, port) VALUES ($1, 'x', 'http', 'h', 80)",
    )
    .bind(acme)
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(matches!(DbError::from(err), DbError::PermissionDenied(_)));
    drop(tx);

    // Move an own row into another tenant.
    let mut tx = app.begin(ctx).await.unwrap();
    let err = sqlx::query("UPDATE devices SET tenant_id = $1 WHERE id = $2")
        .bind(acme)
        .bind(own_device)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(matches!(DbError::from(err), DbError::PermissionDenied(_)));
    drop(tx);

    // Update or delete another tenant's row: nothing happens.
    let mut tx = app.begin(ctx).await.unwrap();
    let updated = sqlx::query("UPDATE devices SET name = 'stolen' WHERE id = $1")
        .bind(acme_device)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    let deleted = sqlx::query("DELETE FROM devices WHERE id = $1")
        .bind(acme_device)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!((updated, deleted), (0, 0));
    // Reference another tenant's device from an own job: the composite
    // foreign key (tenant_id, device_id) refuses it.
    let err = sqlx::query(
        "INSERT INTO jobs (tenant_id, kind, device_id) VALUES (app_current_tenant(), 'snmp.get', $1)",
    )
    .bind(acme_device)
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(
        matches!(DbError::from(err), DbError::ForeignKeyViolation { ref constraint } if constraint == "jobs_device_fkey")
    );
    drop(tx);

    let owner = db.owner().await;
    let name: String = sqlx::query_scalar("SELECT name FROM devices WHERE id = $1")
        .bind(acme_device)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(name, "a-1");
}

#[tokio::test]
async fn app_role_cannot_disable_rls_or_become_owner() {
    let db = TestDb::new().await;
    let mut conn = db.app_conn().await;
    let owner_role: String = {
        let owner = db.owner().await;
        sqlx::query_scalar("SELECT tableowner::text FROM pg_tables WHERE tablename = 'devices'")
            .fetch_one(&owner)
            .await
            .unwrap()
    };
    let refused = [
        "ALTER TABLE devices DISABLE ROW LEVEL SECURITY".to_owned(),
        "ALTER TABLE devices NO FORCE ROW LEVEL SECURITY".to_owned(),
        "DROP POLICY tenant_isolation ON devices".to_owned(),
        format!("ALTER TABLE devices OWNER TO {}", db.app_role),
        format!("SET ROLE {owner_role}"),
        "CREATE TABLE sneaky (id int)".to_owned(),
        "SELECT password_hash FROM users".to_owned(),
        "UPDATE users SET is_platform_admin = true".to_owned(),
        "SELECT ferro_grant_app_privileges(current_user)".to_owned(),
        "SELECT internal_create_tenant('evil', 'Evil')".to_owned(),
        "DELETE FROM audit_logs".to_owned(),
        "INSERT INTO login_logs (username, outcome) VALUES ('x', 'success')".to_owned(),
    ];
    for sql in &refused {
        let result = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await;
        assert!(result.is_err(), "app role was allowed: {sql}");
    }
    // Turning RLS off for the session makes queries fail rather than leak.
    conn.execute("SET row_security = off").await.unwrap();
    assert!(
        sqlx::query("SELECT * FROM devices")
            .fetch_all(&mut conn)
            .await
            .is_err()
    );
    conn.close().await.unwrap();

    let attrs = sqlx::query(
        "SELECT r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb, \
           (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid) AS owns, \
           (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid) AS member_of \
         FROM pg_roles r WHERE r.rolname = $1",
    )
    .bind(&db.app_role)
    .fetch_one(&db.owner().await)
    .await
    .unwrap();
    assert!(!attrs.get::<bool, _>("rolsuper"));
    assert!(!attrs.get::<bool, _>("rolbypassrls"));
    assert!(!attrs.get::<bool, _>("rolcreaterole"));
    assert!(!attrs.get::<bool, _>("rolcreatedb"));
    assert_eq!(attrs.get::<i64, _>("owns"), 0);
    assert_eq!(attrs.get::<i64, _>("member_of"), 0);
    let safety = db.app().await.role_safety().await.unwrap();
    assert!(safety.is_safe());
}

#[tokio::test]
async fn services_refuse_a_superuser_connection_in_production() {
    let db = TestDb::new().await;
    let env = db
        .env()
        .with("DATABASE_URL", db.migrate_config().owner_url.expose());
    let cfg = ferro_config::DatabaseConfig::from_env(&env).unwrap();
    let prod = ferro_db::Db::connect(&cfg, ferro_config::AppEnv::Production, "test").await;
    assert!(matches!(prod, Err(DbError::UnsafeRole { .. })));
    let dev = ferro_db::Db::connect(&cfg, ferro_config::AppEnv::Development, "test").await;
    assert!(dev.is_ok(), "development only warns");
}

#[tokio::test]
async fn seeded_admin_can_log_in_to_default_with_every_tenant_permission() {
    let db = TestDb::new().await;
    let app = db.app().await;
    let user = app
        .lookup_login_user("ADMIN")
        .await
        .unwrap()
        .expect("admin exists");
    assert_eq!(user.username, ADMIN_USERNAME);
    assert!(user.is_active && user.is_platform_admin);
    assert!(user.password_hash.starts_with("$argon2id$"));
    assert!(password::verify(ADMIN_PASSWORD, &user.password_hash).unwrap());
    assert!(!password::verify("wrong", &user.password_hash).unwrap());
    assert!(app.lookup_login_user("nobody").await.unwrap().is_none());

    let tenants = app.user_tenants(user.id).await.unwrap();
    assert_eq!(tenants.len(), 1);
    assert_eq!(
        (tenants[0].slug.as_str(), tenants[0].is_member),
        ("default", true)
    );

    let mut tx = app
        .begin(TenantCtx::new(db.default_tenant(), Some(user.id)))
        .await
        .unwrap();
    let mut perms: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT rp.permission FROM membership_roles mr \
         JOIN role_permissions rp ON rp.role_id = mr.role_id WHERE mr.user_id = $1 ORDER BY 1",
    )
    .bind(user.id)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    perms.sort();
    let mut expected: Vec<String> = Permission::ALL
        .into_iter()
        .filter(|p| *p != Permission::TenantsManage)
        .map(|p| p.code().to_owned())
        .collect();
    expected.sort();
    assert_eq!(perms, expected);
}

#[tokio::test]
async fn changed_admin_password_is_applied_by_the_next_up() {
    let db = TestDb::new().await;
    let env = db.env().with("ADMIN_PASSWORD", "a-brand-new-password");
    let report = ferro_schema::up(&ferro_schema::MigrateConfig::from_env(&env).unwrap())
        .await
        .unwrap();
    assert_eq!(report.admin, ferro_schema::AdminSeed::PasswordUpdated);
    let user = db
        .app()
        .await
        .lookup_login_user(ADMIN_USERNAME)
        .await
        .unwrap()
        .unwrap();
    assert!(password::verify("a-brand-new-password", &user.password_hash).unwrap());
}

#[tokio::test]
async fn permission_catalog_matches_the_code() {
    let db = TestDb::new().await;
    let mut conn = db.app_conn().await;
    let mut codes: Vec<String> = sqlx::query_scalar("SELECT code FROM permissions ORDER BY code")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    codes.sort();
    let mut expected: Vec<String> = Permission::ALL
        .iter()
        .map(|p| p.code().to_owned())
        .collect();
    expected.sort();
    assert_eq!(codes, expected);
}

#[tokio::test]
async fn builtin_roles_have_their_documented_permissions() {
    let db = TestDb::new().await;
    let app = db.app().await;
    let mut tx = app
        .begin(TenantCtx::new(db.default_tenant(), None))
        .await
        .unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT r.name, string_agg(rp.permission, ',' ORDER BY rp.permission) FROM roles r \
         JOIN role_permissions rp ON rp.role_id = r.id WHERE r.is_builtin GROUP BY r.name ORDER BY r.name",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let get = |n: &str| {
        rows.iter()
            .find(|(name, _)| name == n)
            .map(|(_, p)| p.clone())
            .unwrap()
    };
    assert_eq!(
        get("operator"),
        "devices:read,devices:write,jobs:read,jobs:run,schedules:manage,schedules:read"
    );
    assert_eq!(get("viewer"), "devices:read,jobs:read,schedules:read");
    assert!(!get("admin").contains("tenants:manage"));
}

#[tokio::test]
async fn platform_functions_require_a_platform_administrator() {
    let db = TestDb::new().await;
    let app = db.app().await;
    let admin = app
        .lookup_login_user(ADMIN_USERNAME)
        .await
        .unwrap()
        .unwrap();
    let tenant = db.default_tenant();

    // A plain member of the tenant (created through the app role, RLS applies).
    let mut tx = app
        .begin(TenantCtx::new(tenant, Some(admin.id)))
        .await
        .unwrap();
    let plain: Uuid = sqlx::query_scalar(
        "INSERT INTO users (home_tenant_id, username, password_hash) \
         VALUES (app_current_tenant(), 'plain', $1) RETURNING id",
    )
    .bind(password::hash("pw").unwrap())
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut tx = app
        .begin(TenantCtx::new(tenant, Some(plain)))
        .await
        .unwrap();
    let err = sqlx::query("SELECT * FROM platform_list_tenants()")
        .fetch_all(&mut *tx)
        .await
        .unwrap_err();
    assert!(matches!(DbError::from(err), DbError::PermissionDenied(_)));
    drop(tx);

    let mut tx = app
        .begin(TenantCtx::new(tenant, Some(admin.id)))
        .await
        .unwrap();
    let created: (Uuid, String) =
        sqlx::query_as("SELECT id, slug FROM platform_create_tenant('acme', 'Acme')")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    let slugs: Vec<String> = sqlx::query_scalar("SELECT slug FROM platform_list_tenants()")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(slugs, ["acme", "default"]);
    tx.commit().await.unwrap();
    let mut tx = app
        .begin(TenantCtx::new(tenant, Some(admin.id)))
        .await
        .unwrap();
    let dup = sqlx::query("SELECT * FROM platform_create_tenant('acme', 'Again')")
        .fetch_all(&mut *tx)
        .await
        .unwrap_err();
    assert!(
        matches!(DbError::from(dup), DbError::UniqueViolation { ref constraint } if constraint == "tenants_slug_key")
    );
    drop(tx);
    // A platform administrator may enter every tenant; the new one has its roles.
    let tenants = app.user_tenants(admin.id).await.unwrap();
    assert!(
        tenants
            .iter()
            .any(|t| t.tenant_id == created.0 && !t.is_member)
    );
    let mut tx = app
        .begin(TenantCtx::new(created.0, Some(admin.id)))
        .await
        .unwrap();
    let roles: i64 = sqlx::query_scalar("SELECT count(*) FROM roles")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(roles, 3);
}

#[tokio::test]
async fn constraints_reject_bad_rows() {
    let db = TestDb::new().await;
    let app = db.app().await;
    let ctx = TenantCtx::new(db.default_tenant(), None);
    let cases = [
        (
            "INSERT INTO devices (tenant_id, name, protocol, host, port) VALUES (app_current_tenant(), 'a', 'ftp', 'h', 21)",
            "devices_protocol_check",
        ),
        (
            "INSERT INTO devices (tenant_id, name, protocol, host, port) VALUES (app_current_tenant(), 'a', 'http', 'h', 70000)",
            "devices_port_range",
        ),
        (
            "INSERT INTO devices (tenant_id, name, protocol, host, port) VALUES (app_current_tenant(), 'a', 'snmp', 'h', 161)",
            "devices_snmp_settings",
        ),
        (
            "INSERT INTO jobs (tenant_id, kind, status) VALUES (app_current_tenant(), 'noop', 'done')",
            "jobs_status_check",
        ),
        (
            "INSERT INTO jobs (tenant_id, kind, progress) VALUES (app_current_tenant(), 'noop', 101)",
            "jobs_progress_range",
        ),
        (
            "INSERT INTO jobs (tenant_id, kind, params) VALUES (app_current_tenant(), 'noop', '[1]')",
            "jobs_params_object",
        ),
        (
            "INSERT INTO jobs (tenant_id, kind, status) VALUES (app_current_tenant(), 'noop', 'succeeded')",
            "jobs_finished_when_final",
        ),
        (
            "INSERT INTO roles (tenant_id, name) VALUES (app_current_tenant(), 'Bad Name')",
            "roles_name_format",
        ),
        (
            "INSERT INTO schedules (tenant_id, name, cron, kind, misfire_policy) VALUES (app_current_tenant(), 's', '* * * * *', 'noop', 'later')",
            "schedules_misfire_policy_check",
        ),
    ];
    for (sql, constraint) in cases {
        let mut tx = app.begin(ctx).await.unwrap();
        let err = DbError::from(sqlx::query(sql).execute(&mut *tx).await.unwrap_err());
        assert_eq!(err.constraint(), Some(constraint), "{sql}: {err:?}");
    }
    let owner = db.owner().await;
    for (sql, constraint) in [
        (
            "INSERT INTO tenants (slug, name) VALUES ('Not A Slug', 'x')",
            "tenants_slug_format",
        ),
        (
            "INSERT INTO tenants (slug, name) VALUES ('-bad', 'x')",
            "tenants_slug_format",
        ),
    ] {
        let err = DbError::from(sqlx::query(sql).execute(&owner).await.unwrap_err());
        assert_eq!(err.constraint(), Some(constraint));
    }
}

#[tokio::test]
async fn login_attempts_are_logged_and_visible_only_to_their_tenant() {
    let db = TestDb::new().await;
    let app = db.app().await;
    let acme = db.create_tenant("acme").await;
    for (tenant, outcome) in [
        (
            Some(db.default_tenant()),
            ferro_db::cross_tenant::LoginOutcome::Success,
        ),
        (Some(acme), ferro_db::cross_tenant::LoginOutcome::Failure),
        (None, ferro_db::cross_tenant::LoginOutcome::Failure),
    ] {
        app.record_login(&ferro_db::cross_tenant::LoginRecord {
            tenant_id: tenant,
            user_id: None,
            username: "someone",
            ip: Some("203.0.113.7".parse().unwrap()),
            user_agent: Some("curl/8"),
            outcome,
            reason: Some("test"),
        })
        .await
        .unwrap();
    }
    let mut tx = app
        .begin(TenantCtx::new(db.default_tenant(), None))
        .await
        .unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT outcome, host(ip) FROM login_logs")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(rows, vec![("success".to_owned(), "203.0.113.7".to_owned())]);
}

#[tokio::test]
async fn reset_drops_data_and_reapplies() {
    let db = TestDb::new().await;
    insert_device(&db.app().await, db.default_tenant(), "gone-soon").await;
    let report = ferro_schema::reset(&db.migrate_config()).await.unwrap();
    assert_eq!(
        report.migrations_applied,
        ferro_schema::MIGRATOR.iter().count()
    );
    assert_eq!(report.admin, ferro_schema::AdminSeed::Created);
    let app = db.app().await;
    let mut tx = app
        .begin(TenantCtx::new(report.default_tenant_id, None))
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM devices")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 0);

    let prod = db
        .env()
        .with("APP_ENV", "production")
        .with("ADMIN_PASSWORD", "long-enough-password");
    let err = ferro_schema::reset(&ferro_schema::MigrateConfig::from_env(&prod).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, ferro_schema::MigrateError::ResetInProduction));
}

#[tokio::test]
async fn temporary_tables_cannot_shadow_tables_in_definer_functions() {
    let db = TestDb::new().await;
    let mut conn = db.app_conn().await;
    let err = sqlx::query("CREATE TEMP TABLE login_logs (x int)")
        .execute(&mut conn)
        .await;
    assert!(
        err.is_err(),
        "the application role can create temporary tables"
    );
    let owner = db.owner().await;
    let rows: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT proname::text, proconfig FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND prosecdef",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    assert!(!rows.is_empty());
    for (name, config) in rows {
        assert_eq!(
            config,
            ["search_path=pg_catalog, public, pg_temp"],
            "{name}"
        );
    }
}

#[tokio::test]
async fn no_function_is_executable_by_public() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let public: Vec<String> = sqlx::query_scalar(
        "SELECT p.oid::regprocedure::text FROM pg_proc p, \
           aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a \
         WHERE p.pronamespace = 'public'::regnamespace AND a.grantee = 0",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    assert!(public.is_empty(), "executable by PUBLIC: {public:?}");
}

#[tokio::test]
async fn a_tenant_admin_cannot_update_the_platform_administrators_row() {
    let db = TestDb::new().await;
    let app = db.app().await;
    let admin = app
        .lookup_login_user(ADMIN_USERNAME)
        .await
        .unwrap()
        .unwrap();
    // Another user of the same (home) tenant.
    let mut tx = app
        .begin(TenantCtx::new(db.default_tenant(), Some(admin.id)))
        .await
        .unwrap();
    let other: Uuid = sqlx::query_scalar(
        "INSERT INTO users (home_tenant_id, username, password_hash) VALUES (app_current_tenant(), 'other', $1) RETURNING id",
    )
    .bind(password::hash("pw").unwrap())
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut tx = app
        .begin(TenantCtx::new(db.default_tenant(), Some(other)))
        .await
        .unwrap();
    let changed = sqlx::query("UPDATE users SET email = 'x@example.com' WHERE id = $1")
        .bind(admin.id)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 0);
}
