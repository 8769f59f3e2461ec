use sqlx::error::ErrorKind;

/// Database errors, classified by what the caller should do about them.
/// The API maps these to HTTP in one place; the worker to retry or fail.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be reached or the pool is exhausted; transient.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A unique constraint rejected the write.
    #[error("unique constraint {constraint} violated")]
    UniqueViolation { constraint: String },
    /// A foreign key rejected the write (a referenced row is missing, or is
    /// in another tenant: composite keys include `tenant_id`).
    #[error("foreign key {constraint} violated")]
    ForeignKeyViolation { constraint: String },
    /// A check constraint rejected the row.
    #[error("check constraint {constraint} violated")]
    CheckViolation { constraint: String },
    /// A required column was null.
    #[error("column {column} must not be null")]
    NotNullViolation { column: String },
    /// A value the database could not accept (bad cast, too long, out of range).
    #[error("invalid value: {message}")]
    InvalidValue { message: String },
    /// Privileges or a row-level security policy refused the statement.
    #[error("permission denied by the database")]
    PermissionDenied(#[source] sqlx::Error),
    /// A query that expected a row found none.
    #[error("row not found")]
    NotFound,
    /// The configured role may bypass row-level security.
    #[error(
        "database role {role} is a superuser or has BYPASSRLS, so row-level security would not \
         apply; connect as the application role that `migrate up` creates"
    )]
    UnsafeRole { role: String },
    #[error("database error")]
    Other(#[source] sqlx::Error),
}

impl DbError {
    /// True for errors that may succeed when tried again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, DbError::Unavailable(_))
            || matches!(self, DbError::Other(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("40001" | "40P01")))
    }

    /// True for a write the database refuses for what it holds (a value it
    /// cannot store, a check or not-null constraint): the same write fails
    /// the same way every time.
    pub fn is_refused_value(&self) -> bool {
        matches!(
            self,
            DbError::InvalidValue { .. }
                | DbError::CheckViolation { .. }
                | DbError::NotNullViolation { .. }
        )
    }

    /// The violated constraint's name, for constraint errors.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            DbError::UniqueViolation { constraint }
            | DbError::ForeignKeyViolation { constraint }
            | DbError::CheckViolation { constraint } => Some(constraint),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => DbError::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => DbError::Unavailable(err),
            sqlx::Error::Database(ref db) => {
                let constraint = db.constraint().unwrap_or_default().to_owned();
                match db.kind() {
                    ErrorKind::UniqueViolation => DbError::UniqueViolation { constraint },
                    ErrorKind::ForeignKeyViolation => DbError::ForeignKeyViolation { constraint },
                    ErrorKind::CheckViolation => DbError::CheckViolation { constraint },
                    ErrorKind::NotNullViolation => DbError::NotNullViolation {
                        column: db
                            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                            .and_then(|e| e.column())
                            .unwrap_or_default()
                            .to_owned(),
                    },
                    _ => match db.code().as_deref() {
                        // insufficient_privilege (also raised for RLS WITH CHECK failures)
                        Some("42501") => DbError::PermissionDenied(err),
                        // data exceptions: bad text representation, too long, out of range, ...
                        Some(code) if code.starts_with("22") => DbError::InvalidValue {
                            message: db.message().to_owned(),
                        },
                        // admin shutdown, cannot connect now, too many connections
                        Some("57P01" | "57P02" | "57P03" | "53300") => DbError::Unavailable(err),
                        _ => DbError::Other(err),
                    },
                }
            }
            other => DbError::Other(other),
        }
    }
}
