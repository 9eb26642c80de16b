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
    /// An id lies outside the id window asked for: the server ignored `range[id]`, so no
    /// shape of request can read the listing correctly.
    #[error("id {id} is outside the window {lo}..={hi} asked for: the server ignored range[id]")]
    OutsideWindow {
        /// The window's first id.
        lo: i64,
        /// The window's last id.
        hi: i64,
        /// The offending id.
        id: i64,
    },
    /// A window of one id holds more rows than a page: the answer contradicts itself.
    #[error("the window {lo}..={lo} holds {total} rows by X-Total, more than one id can")]
    WindowCannotSplit {
        /// The id.
        lo: i64,
        /// What `X-Total` said.
        total: u64,
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
        let done = holds_all(n, total, per_page);
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

/// Reads a listing in id windows (`range[id]=lo,hi`) when the server does not sort it: a
/// window is complete when its page holds every row `X-Total` counts in it, whatever their
/// order; a window with more rows than a page is asked for again, narrower (its rows are still
/// good data). The cursor moves to a window's upper bound once the window is complete, so the
/// walk never relies on the order of rows and never skips one. Widths adapt to aim at about
/// 80% of a page. Sans-IO, like [`KeysetPager`].
#[derive(Debug, Clone)]
pub struct IdWindows {
    base: Query,
    per_page: u32,
    lo: i64,
    width: i64,
    done: bool,
}

impl IdWindows {
    /// Windows over `base` from after `after`, sized from a page the server sent unsorted
    /// (`sample` ids, `total` rows remaining): the ids seen tell how far the rows reach.
    pub fn after_unsorted(
        base: Query,
        per_page: u32,
        after: Option<i64>,
        sample: &[i64],
        total: Option<u64>,
    ) -> IdWindows {
        let per_page = per_page.max(1);
        let lo = after.map_or(1, |a| a.saturating_add(1));
        let target = f64::from(per_page) * 0.8;
        let width = match (sample.iter().max(), total) {
            (Some(&max), Some(total)) if total > 0 && max >= lo => {
                let span = (max - lo + 1) as f64;
                ((span * target / total as f64) as i64).max(1)
            }
            _ => i64::from(per_page) * 8,
        };
        IdWindows {
            base,
            per_page,
            lo,
            width,
            done: lo > ID_MAX,
        }
    }

    fn hi(&self) -> i64 {
        self.lo.saturating_add(self.width - 1).min(ID_MAX)
    }

    /// The cursor: the last id of the last complete window.
    pub fn after(&self) -> Option<i64> {
        (self.lo > 1).then(|| self.lo - 1)
    }

    /// Whether the last window reached [`ID_MAX`].
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The query for the next window.
    pub fn query(&self) -> Query {
        self.base
            .clone()
            .sort(["id"])
            .per_page(self.per_page)
            .range("id", self.lo, self.hi())
    }

    /// Takes the answer for the current window. On error nothing moved.
    pub fn advance(
        &mut self,
        ids: &[i64],
        total: Option<u64>,
        per_page: u32,
    ) -> Result<PageStep, PagingError> {
        let (lo, hi) = (self.lo, self.hi());
        check_in_window(ids, lo, hi)?;
        let n = ids.len() as u64;
        let per_page = per_page.max(1);
        let complete = holds_all(n, total, per_page);
        let target = f64::from(per_page) * 0.8;
        if complete {
            // Aim the next window at ~80% of a page from this one's density.
            let grown = (self.width as f64 * target / n.max(1) as f64) as i64;
            self.width = grown.clamp(1, ID_MAX);
            self.done = hi >= ID_MAX;
            self.lo = hi.saturating_add(1);
        } else {
            let total = total.unwrap_or(n.saturating_mul(2)).max(n + 1);
            if self.width == 1 {
                return Err(PagingError::WindowCannotSplit { lo, total });
            }
            let narrower = (self.width as f64 * target / total as f64) as i64;
            self.width = narrower.min(self.width / 2).max(1);
        }
        Ok(PageStep {
            done: self.done,
            after: self.after(),
            remaining: None,
        })
    }
}

/// Whether a page of `n` items holds every row its request matched: `X-Total` says so, or,
/// without it, the page is not full.
fn holds_all(n: u64, total: Option<u64>, per_page: u32) -> bool {
    match total {
        Some(total) => n >= total,
        None => n < u64::from(per_page.max(1)),
    }
}

/// Checks that every id lies in the window `lo..=hi` asked for with `range[id]`.
pub fn check_in_window(ids: &[i64], lo: i64, hi: i64) -> Result<(), PagingError> {
    match ids.iter().find(|&&id| id < lo || id > hi) {
        Some(&id) => Err(PagingError::OutsideWindow { lo, hi, id }),
        None => Ok(()),
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
    fn id_windows_read_an_unsorted_listing_without_skipping_a_row() {
        // 250 rows at ids 1..=250, served in any order: after an unsorted first page (newest
        // first: 250..151, X-Total 250), windows are sized from it and narrowed when full.
        let rows: Vec<i64> = (1..=250).collect();
        let sample: Vec<i64> = (151..=250).rev().collect();
        let mut w = IdWindows::after_unsorted(Query::new(), 100, None, &sample, Some(250));
        let mut read = std::collections::BTreeSet::new();
        let mut requests = 0;
        while !w.is_done() {
            requests += 1;
            assert!(requests < 60, "the walk must end");
            let q = w.query();
            let (lo, hi) = q.get("range[id]").unwrap().split_once(',').unwrap();
            let (lo, hi): (i64, i64) = (lo.parse().unwrap(), hi.parse().unwrap());
            let inside: Vec<i64> = rows
                .iter()
                .copied()
                .filter(|&id| id >= lo && id <= hi)
                .collect();
            // The server ignores sort: newest first, at most a page.
            let page: Vec<i64> = inside.iter().rev().take(100).copied().collect();
            let step = w.advance(&page, Some(inside.len() as u64), 100).unwrap();
            read.extend(page);
            if let Some(after) = step.after {
                assert!(
                    read.range(..=after).count() as i64 == after.min(250),
                    "no row skipped below the cursor"
                );
            }
        }
        assert_eq!(read.len(), 250);
        assert!(requests <= 12, "{requests} requests for 3 pages of rows");
    }

    #[test]
    fn id_windows_refuse_rows_outside_the_window_and_a_one_id_window_that_overflows() {
        let mut w = IdWindows::after_unsorted(Query::new(), 100, Some(10), &[], None);
        assert_eq!(w.query().get("range[id]"), Some("11,810"));
        assert_eq!(
            w.advance(&[5], Some(1), 100),
            Err(PagingError::OutsideWindow {
                lo: 11,
                hi: 810,
                id: 5
            })
        );
        let mut w = IdWindows::after_unsorted(Query::new(), 100, Some(10), &[11], Some(1000));
        assert_eq!(w.query().get("range[id]"), Some("11,11"));
        assert_eq!(
            w.advance(&[11], Some(3), 100),
            Err(PagingError::WindowCannotSplit { lo: 11, total: 3 })
        );
    }

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
