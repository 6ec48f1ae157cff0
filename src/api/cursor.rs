//! Keyset (cursor) pagination for the large lists: contacts, a campaign's recipients and its
//! send logs (PRODUCT §3).
//!
//! A client reads the first page with `?per_page=` (or any `?page=`), then passes each
//! answer's `next_cursor` back as `?cursor=` until `next_cursor` is `null`. A cursor is the
//! base64url (no padding) of the JSON sort key of the last row returned; the next page is the
//! rows strictly after that key in the list's order, read from an index in that order, so
//! it costs the same at any depth and is stable under inserts: no row is repeated or skipped,
//! and rows added during the walk appear if they sort after the cursor. Cursors carry no
//! tenant or campaign: every query stays scoped by the caller's tenant, so a cursor taken
//! from another tenant's list only positions the walk within the caller's own rows.

use actix_web::{dev::Payload, FromRequest, HttpRequest};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{parse_query, Pagination};
use crate::error::{AppError, FieldError};

/// Filtered lists count their matching rows only up to this many; beyond it `total` is this
/// number and `total_is_estimate` is true.
pub const COUNT_CAP: u64 = 10_000;

/// Longest `cursor` accepted, in characters (real ones are under 120).
const MAX_CURSOR_LEN: usize = 512;

/// `?cursor=`, the keyset position (documented next to [`Pagination`]).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CursorParam {
    /// Opaque: the `next_cursor` of the previous answer. The page then holds the rows after
    /// it (`page` must be absent or 1). An invalid cursor is a 422 naming `cursor`.
    pub cursor: Option<String>,
}

/// A row's position in its list's order: what a cursor encodes.
pub trait Keyed {
    type Key: Serialize + DeserializeOwned;
    /// The sort key of this row (the columns of the list's `ORDER BY`, in order).
    fn key(&self) -> Self::Key;
}

/// The opaque text of a sort key: base64url (no padding) of its JSON.
pub fn encode<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

/// The sort key a cursor encodes; `None` when it is not a cursor of this kind of list.
pub fn decode<K: DeserializeOwned>(cursor: &str) -> Option<K> {
    if cursor.len() > MAX_CURSOR_LEN {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `?page=&per_page=&cursor=` of a keyset-paginated list whose sort key is `K`.
#[derive(Debug, Clone)]
pub struct Keyset<K> {
    pub page: Pagination,
    /// Continue after this key (from `?cursor=`); `None` reads `page` by offset.
    pub after: Option<K>,
}

impl<K> Keyset<K> {
    /// The SQL `LIMIT`: one row more than a page, to learn whether another page follows.
    pub fn limit(&self) -> i64 {
        self.page.per_page as i64 + 1
    }

    /// The SQL `OFFSET`: none after a cursor, else the page's.
    pub fn offset(&self) -> i64 {
        match self.after {
            Some(_) => 0,
            None => self.page.offset() as i64,
        }
    }

    /// The answer from the rows read with [`limit`](Self::limit) and
    /// [`offset`](Self::offset): at most `per_page` items, and a cursor after the last one
    /// when more rows follow.
    pub fn page_of<T: Keyed<Key = K>>(&self, mut items: Vec<T>, total: Total) -> CursorPage<T>
    where
        K: Serialize,
    {
        let per_page = self.page.per_page as usize;
        let more = items.len() > per_page;
        items.truncate(per_page);
        let next_cursor = items.last().filter(|_| more).map(|last| encode(&last.key()));
        let (total, total_is_estimate) = match total {
            Total::Exact(n) => (n, false),
            Total::AtLeast(n) => (n, true),
        };
        CursorPage {
            items,
            page: self.page.page,
            per_page: self.page.per_page,
            total,
            total_is_estimate,
            next_cursor,
        }
    }
}

impl<K: DeserializeOwned> Keyset<K> {
    /// Parses the query string: pagination bounds as [`Pagination`], then the cursor.
    pub fn parse(req: &HttpRequest) -> Result<Self, AppError> {
        let page = Pagination::extract(req).into_inner()?;
        let param: CursorParam = parse_query(req.query_string())?;
        let after = match param.cursor {
            None => None,
            Some(_) if page.page != 1 => {
                return Err(AppError::Validation(vec![FieldError::new(
                    "cursor",
                    "cannot be combined with a page other than 1",
                )]))
            }
            Some(text) => Some(
                decode(&text)
                    .ok_or_else(|| AppError::field("cursor", "is not a cursor of this list (use a next_cursor)"))?,
            ),
        };
        Ok(Self { page, after })
    }
}

impl<K: DeserializeOwned> FromRequest for Keyset<K> {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Self::parse(req))
    }
}

/// How many rows a list has: counted exactly, or counted up to [`COUNT_CAP`] only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    Exact(u64),
    /// At least this many (the count stopped at the cap).
    AtLeast(u64),
}

impl Total {
    /// A count that stopped after `cap + 1` rows: exact up to `cap`, else at least `cap`.
    pub fn bounded(counted: u64, cap: u64) -> Self {
        if counted > cap {
            Self::AtLeast(cap)
        } else {
            Self::Exact(counted)
        }
    }
}

/// A page of a large list: `{items, page, per_page, total, total_is_estimate, next_cursor}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CursorPage<T> {
    pub items: Vec<T>,
    /// The page asked for (1 when reading after a cursor).
    pub page: u64,
    pub per_page: u64,
    /// All rows of the list (not only this page). When `total_is_estimate` is true, a lower
    /// bound: the list has at least this many rows.
    pub total: u64,
    /// True when counting stopped at 10,000 rows (filtered lists and send logs).
    pub total_is_estimate: bool,
    /// Pass as `?cursor=` for the rows after this page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Key {
        position: i32,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Other {
        id: i64,
    }

    #[test]
    fn a_cursor_decodes_to_the_key_it_encodes() {
        let text = encode(&Key { position: 42 });
        assert!(text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(decode::<Key>(&text), Some(Key { position: 42 }));
    }

    #[test]
    fn another_lists_cursor_or_garbage_does_not_decode() {
        assert_eq!(decode::<Other>(&encode(&Key { position: 1 })), None);
        for bad in ["", "!!", "bm90IGpzb24", "\0", &"A".repeat(MAX_CURSOR_LEN + 1)] {
            assert_eq!(decode::<Key>(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_count_past_the_cap_is_a_lower_bound() {
        assert_eq!(Total::bounded(10, 10), Total::Exact(10));
        assert_eq!(Total::bounded(11, 10), Total::AtLeast(10));
    }
}
