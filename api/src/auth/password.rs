//! Password work for the auth routes and user management.

use crate::error::ApiError;
use crate::validation::Validator;

/// Runs a password hash or verification on the blocking pool, keeping the
/// caller's tracing span, then gives argon2's working memory back to the
/// system: argon2id works in 19 MiB, which an idle blocking thread would
/// otherwise keep (one login made the idle api about 20 MB heavier). The
/// purge costs microseconds against a hash's tens of milliseconds.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let out = span.in_scope(f);
        crate::memory::give_back();
        out
    })
    .await
    .map_err(ApiError::internal)
}

/// Password rules for new passwords.
pub fn check_new_password(field: &str, password: &str, v: &mut Validator) {
    let n = password.chars().count();
    v.check((8..=256).contains(&n), field, "must be 8 to 256 characters");
}
