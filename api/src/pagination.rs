//! Pages of a list: what a list request asks for and what it answers.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, FieldError};

/// `?page=` (from 1) and `?size=` (1 to 100, default 20). Any other
/// parameter is refused (422 naming it), as on the lists with filters: a
/// filter a list does not have must not look as if it had been applied.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Page number, from 1 (default 1) to 1,000,000.
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
pub struct Paging {
    pub page: i64,
    pub size: i64,
}

impl Paging {
    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.size
    }
}

impl PageParams {
    pub fn validate(&self, errors: &mut Vec<FieldError>) -> Paging {
        let page = self.page.unwrap_or(1);
        let size = self.size.unwrap_or(20);
        if !(1..=1_000_000).contains(&page) {
            errors.push(FieldError::new(
                "page",
                "must be a whole number from 1 to 1000000",
            ));
        }
        if !(1..=100).contains(&size) {
            errors.push(FieldError::new("size", "must be between 1 and 100"));
        }
        Paging { page, size }
    }

    pub fn paging(&self) -> Result<Paging, ApiError> {
        let mut errors = Vec::new();
        let paging = self.validate(&mut errors);
        if errors.is_empty() {
            Ok(paging)
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paginated<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: i64,
    pub size: i64,
}

impl<T> Paginated<T> {
    pub fn new(items: Vec<T>, total: i64, paging: Paging) -> Self {
        Self {
            items,
            total,
            page: paging.page,
            size: paging.size,
        }
    }
}
