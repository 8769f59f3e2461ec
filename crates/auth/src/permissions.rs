use serde::{Deserialize, Serialize};

/// Every permission a role can hold. The database catalog (`permissions`
/// table, migration `permission_catalog`) holds the same codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "tenants:manage")]
    TenantsManage,
    #[serde(rename = "users:read")]
    UsersRead,
    #[serde(rename = "users:manage")]
    UsersManage,
    #[serde(rename = "roles:read")]
    RolesRead,
    #[serde(rename = "roles:manage")]
    RolesManage,
    #[serde(rename = "devices:read")]
    DevicesRead,
    #[serde(rename = "devices:write")]
    DevicesWrite,
    #[serde(rename = "jobs:read")]
    JobsRead,
    #[serde(rename = "jobs:run")]
    JobsRun,
    #[serde(rename = "jobs:manage")]
    JobsManage,
    #[serde(rename = "schedules:read")]
    SchedulesRead,
    #[serde(rename = "schedules:manage")]
    SchedulesManage,
    #[serde(rename = "audit:read")]
    AuditRead,
}

impl Permission {
    pub const ALL: [Permission; 13] = [
        Permission::TenantsManage,
        Permission::UsersRead,
        Permission::UsersManage,
        Permission::RolesRead,
        Permission::RolesManage,
        Permission::DevicesRead,
        Permission::DevicesWrite,
        Permission::JobsRead,
        Permission::JobsRun,
        Permission::JobsManage,
        Permission::SchedulesRead,
        Permission::SchedulesManage,
        Permission::AuditRead,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Permission::TenantsManage => "tenants:manage",
            Permission::UsersRead => "users:read",
            Permission::UsersManage => "users:manage",
            Permission::RolesRead => "roles:read",
            Permission::RolesManage => "roles:manage",
            Permission::DevicesRead => "devices:read",
            Permission::DevicesWrite => "devices:write",
            Permission::JobsRead => "jobs:read",
            Permission::JobsRun => "jobs:run",
            Permission::JobsManage => "jobs:manage",
            Permission::SchedulesRead => "schedules:read",
            Permission::SchedulesManage => "schedules:manage",
            Permission::AuditRead => "audit:read",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.code() == code)
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_serde_and_from_code() {
        for p in Permission::ALL {
            assert_eq!(Permission::from_code(p.code()), Some(p));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.code()));
            assert_eq!(serde_json::from_str::<Permission>(&json).unwrap(), p);
        }
        assert_eq!(Permission::from_code("devices:delete"), None);
    }
}
