//! Offset pagination of lists (`?page=&per_page=`) and the page they answer. The query
//! parameters are read and bounded by the extractor in [`crate::api::extract`].

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub const DEFAULT_PER_PAGE: u64 = 50;
pub const MAX_PER_PAGE: u64 = 500;

/// `?page=&per_page=`: page from 1, per_page 1–500 (default 50).
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Pagination {
    /// 1-based page number.
    #[serde(default = "first_page")]
    #[param(minimum = 1, maximum = 1_000_000, default = 1)]
    pub page: u64,
    /// Items per page, 1–500.
    #[serde(default = "default_per_page")]
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub per_page: u64,
}

fn first_page() -> u64 {
    1
}
fn default_per_page() -> u64 {
    DEFAULT_PER_PAGE
}

impl Pagination {
    pub fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(self.per_page)
    }

    pub fn page_of<T>(&self, items: Vec<T>, total: u64) -> Page<T> {
        Page {
            items,
            page: self.page,
            per_page: self.per_page,
            total,
        }
    }

    /// This page of `query` (already filtered and ordered), with the total count.
    pub async fn fetch<E>(
        &self,
        db: &sea_orm::DatabaseConnection,
        query: sea_orm::Select<E>,
    ) -> Result<Page<E::Model>, sea_orm::DbErr>
    where
        E: sea_orm::EntityTrait,
        E::Model: Sync,
    {
        use sea_orm::{PaginatorTrait, QuerySelect};
        let total = query.clone().count(db).await?;
        let items = query.offset(self.offset()).limit(self.per_page).all(db).await?;
        Ok(self.page_of(items, total))
    }
}

/// A page of a list: `{items, page, per_page, total}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u64,
    pub per_page: u64,
    pub total: u64,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            page: self.page,
            per_page: self.per_page,
            total: self.total,
        }
    }

    pub fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        Ok(Page {
            items: self.items.into_iter().map(f).collect::<Result<_, E>>()?,
            page: self.page,
            per_page: self.per_page,
            total: self.total,
        })
    }
}
