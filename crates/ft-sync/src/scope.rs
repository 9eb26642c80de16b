//! Campus sets: how the planner groups campuses so that a listing costs requests in proportion
//! to its rows, not to the number of campuses.
//!
//! A campus-scoped listing read one campus at a time costs at least one request per campus even
//! when nothing changed: a quiet delta of the whole network (50+ campuses) would spend hundreds
//! of requests on empty answers. So the planner reads the campuses that share a pass shape (all
//! those due a full read, all those due a delta) as one **campus set**: one task whose filters
//! are comma lists (`filter[campus_id]=1,12,21`), one window from the oldest watermark of the
//! set. A set is cut where a filter list would exceed [`FILTER_LIST_MAX`] values (longer lists
//! hit a gateway 502 on the real API); the coalitions filter counts coalitions, not campuses.
//!
//! Watermarks stay per campus: a completed set pass advances the `campus:<id>` cursor of every
//! member in the transaction of its last page, and its own resume cursor (`campuses:...`) is
//! dropped. So status and freshness are per campus whatever the sets were, a set that changes
//! between runs (a campus added) loses nothing, and a set of one campus is the plain
//! `campus:<id>` scope.

/// The most values the engine puts in one `filter[...]` list.
pub(crate) const FILTER_LIST_MAX: usize = 100;

/// Coalitions assumed for a campus whose coalitions are not stored yet, when cutting sets for
/// the coalitions filter (42 campuses have 4; a pass that meets a longer list anyway reads it
/// in chunks, see `listing.rs`).
pub(crate) const UNKNOWN_COALITIONS: usize = 4;

/// The scope string of a campus set: `campuses:` and the sorted ids, runs of consecutive ids
/// written as ranges (`campuses:1-3,12`), so the same set always gets the same scope.
pub(crate) fn set_scope(campuses: &[i64]) -> String {
    let mut ids = campuses.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            i += 1;
            end = ids[i];
        }
        parts.push(if end > start + 1 {
            format!("{start}-{end}")
        } else if end == start + 1 {
            format!("{start},{end}")
        } else {
            start.to_string()
        });
        i += 1;
    }
    format!("campuses:{}", parts.join(","))
}

/// Cuts sorted `campuses` into consecutive sets whose summed `weight` (the values each campus
/// adds to a filter list) stays within `max`. A campus heavier than `max` on its own gets a set
/// of its own.
pub(crate) fn chunk(campuses: &[i64], weight: impl Fn(i64) -> usize, max: usize) -> Vec<Vec<i64>> {
    let mut out: Vec<Vec<i64>> = Vec::new();
    let mut current: Vec<i64> = Vec::new();
    let mut load = 0usize;
    for &c in campuses {
        let w = weight(c).max(1);
        if !current.is_empty() && load + w > max {
            out.push(std::mem::take(&mut current));
            load = 0;
        }
        current.push(c);
        load += w;
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_scopes_are_sorted_compact_and_stable() {
        assert_eq!(set_scope(&[12, 1, 3, 2, 21]), "campuses:1-3,12,21");
        assert_eq!(set_scope(&[5, 4]), "campuses:4,5");
        assert_eq!(set_scope(&[7, 7, 9]), "campuses:7,9");
        assert_eq!(set_scope(&[1, 2, 3, 5, 6, 7, 8]), "campuses:1-3,5-8");
    }

    #[test]
    fn chunks_keep_every_filter_list_within_the_limit() {
        let campuses: Vec<i64> = (1..=250).collect();
        let sets = chunk(&campuses, |_| 1, FILTER_LIST_MAX);
        assert_eq!(
            sets.iter().map(Vec::len).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        assert_eq!(sets.concat(), campuses, "every campus once, in order");

        // Coalitions: four per campus, so 25 campuses per set.
        let sets = chunk(&campuses[..60], |_| 4, FILTER_LIST_MAX);
        assert_eq!(sets.iter().map(Vec::len).collect::<Vec<_>>(), [25, 25, 10]);
        // A campus over the limit on its own stands alone; no coalitions still counts one.
        let sets = chunk(&[1, 2, 3], |c| if c == 2 { 150 } else { 0 }, 100);
        assert_eq!(sets, [vec![1], vec![2], vec![3]]);
    }
}
