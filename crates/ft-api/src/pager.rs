//! Keyset paging that checks itself.
//!
//! A [`KeysetPager`] owns everything that makes a keyset walk correct: `sort=id`, the
//! `range[id]=<last + 1>,<ID_MAX>` bound after the last id read, the end test from `X-Total`
//! (which counts the rows that remain after the filters, so the walk ends on the page whose item
//! count reaches it), and the checks a page must pass before its rows are trusted:
//!
//! - a page that is empty while `X-Total` says rows remain is an error, never the end;
//! - ids must be strictly ascending and above the cursor: a page that is not was served by a
//!   server that ignored `sort` or `range[id]`, and taking its largest id as the next cursor
//!   would skip rows silently.
//!
//! It is sans-IO: the caller sends [`KeysetPager::query`] however it likes (with a shutdown
//! grace, through a test double) and hands the page to [`KeysetPager::advance`].
//!
//! ```
//! use ft_api::{KeysetPager, Query};
//! let mut pager = KeysetPager::new(Query::new().filter("campus_id", [1]), 100);
//! assert_eq!(pager.query().get("sort"), Some("id"));
//! let step = pager.advance(&[3, 5, 9], Some(3), 100).unwrap();
//! assert!(step.done);
//! assert_eq!(pager.after(), Some(9));
//! ```

use crate::page::Page;
use crate::query::Query;

/// Upper bound of the keyset range. Ids are `int4` on the server: a larger bound is refused or
/// overflows there.
pub const ID_MAX: i64 = 2_147_483_647;

/// An API model with an id, so a pager can check a page's ids.
pub trait Identified {
    /// The row's id.
    fn id(&self) -> i64;
}

/// Why a page cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PagingError {
    /// `X-Total` promised rows but the page is empty.
    #[error("empty page while X-Total says {remaining} rows remain")]
    EmptyPage {
        /// What `X-Total` said.
        remaining: u64,
    },
    /// Ids on the page are not strictly ascending: the server ignored `sort=id`.
    #[error(
        "ids are not ascending (id {id} follows {previous}): the server ignored sort=id, so the page cannot be walked by keyset"
    )]
    NotAscending {
        /// The id before.
        previous: i64,
        /// The id that is not above it.
        id: i64,
    },
    /// An id is not above the cursor: the server ignored `range[id]`, or the cursor did not move.
    #[error(
        "id {id} is not above the cursor {after}: the server ignored range[id], so the walk would not advance"
    )]
    BelowCursor {
        /// The cursor the page was asked after.
        after: i64,
        /// The offending id.
        id: i64,
    },
}

/// What one accepted page means for the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageStep {
    /// The page holds every row that remained: the walk is over.
    pub done: bool,
    /// The cursor after this page (the largest id read so far).
    pub after: Option<i64>,
    /// `X-Total` of this request: the rows that remained before this page, when sent.
    pub remaining: Option<u64>,
}

/// A keyset walk over one filtered listing. See the module docs.
#[derive(Debug, Clone)]
pub struct KeysetPager {
    base: Query,
    per_page: u32,
    after: Option<i64>,
    done: bool,
}

impl KeysetPager {
    /// A walk over `base` (its filters and time ranges), `per_page` rows at a time.
    pub fn new(base: Query, per_page: u32) -> KeysetPager {
        KeysetPager {
            base,
            per_page: per_page.max(1),
            after: None,
            done: false,
        }
    }

    /// Resumes after `after` (the last id an earlier walk committed), or from the start.
    pub fn resume_after(mut self, after: Option<i64>) -> KeysetPager {
        self.after = after;
        self
    }

    /// The cursor: the largest id read so far.
    pub fn after(&self) -> Option<i64> {
        self.after
    }

    /// Whether the last accepted page ended the walk.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The query for the next page.
    pub fn query(&self) -> Query {
        let query = self.base.clone().sort(["id"]).per_page(self.per_page);
        match self.after {
            Some(after) => query.range("id", after.saturating_add(1), ID_MAX),
            None => query,
        }
    }

    /// Checks a page's ids (in the order received) against the cursor and moves past them.
    /// `total` is the page's `X-Total`, `per_page` its effective size (the server may clamp).
    /// On error the pager is unchanged: the same page may be asked for again.
    pub fn advance(
        &mut self,
        ids: &[i64],
        total: Option<u64>,
        per_page: u32,
    ) -> Result<PageStep, PagingError> {
        let n = ids.len() as u64;
        let done = match total {
            Some(total) => n >= total,
            None => n < u64::from(per_page.max(1)),
        };
        if n == 0 && !done {
            return Err(PagingError::EmptyPage {
                remaining: total.unwrap_or(0),
            });
        }
        check_ascending(ids, self.after)?;
        if let Some(&last) = ids.last() {
            self.after = Some(last);
        }
        self.done = done;
        Ok(PageStep {
            done,
            after: self.after,
            remaining: total,
        })
    }

    /// [`KeysetPager::advance`] for a decoded page.
    pub fn advance_page<M: Identified>(&mut self, page: &Page<M>) -> Result<PageStep, PagingError> {
        let ids: Vec<i64> = page.items.iter().map(Identified::id).collect();
        self.advance(&ids, page.total, page.per_page)
    }
}

/// Checks that `ids` are strictly ascending and above `after`.
pub fn check_ascending(ids: &[i64], after: Option<i64>) -> Result<(), PagingError> {
    let mut previous = after;
    for &id in ids {
        match previous {
            Some(p) if id <= p => {
                return Err(match after {
                    Some(after) if id <= after => PagingError::BelowCursor { after, id },
                    _ => PagingError::NotAscending { previous: p, id },
                });
            }
            _ => previous = Some(id),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_query_sorts_by_id_without_a_range_and_later_ones_start_after_the_cursor() {
        let mut p = KeysetPager::new(Query::new().filter("campus_id", [7]), 2);
        let q = p.query();
        assert_eq!(q.get("sort"), Some("id"));
        assert_eq!(q.get("range[id]"), None);
        assert_eq!(q.get("filter[campus_id]"), Some("7"));
        let step = p.advance(&[4, 6], Some(5), 2).unwrap();
        assert!(!step.done);
        assert_eq!(step.after, Some(6));
        assert_eq!(p.query().get("range[id]"), Some("7,2147483647"));
        let step = p.advance(&[8, 9, 12], Some(3), 2).unwrap();
        assert!(step.done);
        assert!(p.is_done());
    }

    #[test]
    fn an_empty_page_ends_the_walk_only_when_no_rows_remain() {
        let mut p = KeysetPager::new(Query::new(), 100);
        assert!(p.advance(&[], Some(0), 100).unwrap().done);
        let mut p = KeysetPager::new(Query::new(), 100).resume_after(Some(40));
        assert_eq!(
            p.advance(&[], Some(12), 100),
            Err(PagingError::EmptyPage { remaining: 12 })
        );
        assert_eq!(
            p.after(),
            Some(40),
            "a refused page leaves the cursor where it was"
        );
        // Without X-Total, a short page is the end.
        assert!(p.advance(&[], None, 100).unwrap().done);
        let mut p = KeysetPager::new(Query::new(), 2);
        assert!(!p.advance(&[1, 2], None, 2).unwrap().done);
    }

    #[test]
    fn ids_out_of_order_or_below_the_cursor_are_refused() {
        let mut p = KeysetPager::new(Query::new(), 100);
        assert_eq!(
            p.advance(&[9, 3, 12], Some(3), 100),
            Err(PagingError::NotAscending { previous: 9, id: 3 })
        );
        assert_eq!(p.after(), None);
        let mut p = KeysetPager::new(Query::new(), 100).resume_after(Some(10));
        assert_eq!(
            p.advance(&[4, 11], Some(2), 100),
            Err(PagingError::BelowCursor { after: 10, id: 4 })
        );
        // A repeated id is not progress either.
        assert_eq!(
            p.advance(&[10], Some(1), 100),
            Err(PagingError::BelowCursor { after: 10, id: 10 })
        );
        assert_eq!(
            p.advance(&[11, 11], Some(2), 100),
            Err(PagingError::NotAscending {
                previous: 11,
                id: 11
            })
        );
    }
}
