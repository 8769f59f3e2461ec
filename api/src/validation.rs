//! Checks of request fields beyond their types: [`Validator`] collects the
//! failures into one 422; searches and PATCH bodies have helpers of their own.

use crate::error::{ApiError, FieldError};
use crate::pagination::{PageParams, Paging};

/// Collects validation errors and turns them into one 422.
#[derive(Default)]
pub struct Validator(pub Vec<FieldError>);

impl Validator {
    pub fn check(&mut self, ok: bool, field: &str, message: &str) {
        if !ok {
            self.0.push(FieldError::new(field, message));
        }
    }

    /// A display name (of a device, tenant or schedule): 1 to 200
    /// characters once trimmed, none of them a control character (a newline
    /// or an escape sequence in a name would break logs, CSV exports and
    /// terminals that show it).
    pub fn display_name(&mut self, field: &str, name: &str) {
        self.check(
            (1..=200).contains(&name.trim().chars().count()),
            field,
            "must be 1 to 200 characters",
        );
        self.check(
            !name.chars().any(char::is_control),
            field,
            "must not contain control characters",
        );
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

/// The page and search of a list with a `q` filter (422 naming `q` if it
/// is longer than 200 bytes), and the `ILIKE` pattern for `q`.
pub fn search(
    page: Option<i64>,
    size: Option<i64>,
    q: Option<&str>,
) -> Result<(Paging, Option<String>), ApiError> {
    let mut v = Validator::default();
    let paging = PageParams { page, size }.validate(&mut v.0);
    v.check(
        q.is_none_or(|q| q.chars().count() <= 200),
        "q",
        "at most 200 characters",
    );
    v.finish()?;
    Ok((paging, q.map(like_pattern)))
}

/// A case-insensitive `ILIKE` pattern matching `q` anywhere, with `%`, `_`
/// and `\` in `q` taken literally.
pub fn like_pattern(q: &str) -> String {
    let escaped = q
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The fields of a PATCH body, for `#[serde(default, deserialize_with)]`:
/// a field left out keeps its value (`None`); `null` either clears a value
/// that may be empty ([`patch::nullable`]: `Some(None)`) or is refused with
/// a 422 naming the field ([`patch::required`]), never silently ignored.
pub mod patch {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};

    pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }

    pub fn required<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        match Option::<T>::deserialize(d)? {
            Some(value) => Ok(Some(value)),
            None => Err(D::Error::custom(
                "must not be null (leave the field out to keep its value)",
            )),
        }
    }
}
