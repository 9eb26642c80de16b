//! The query language of list endpoints: pagination, `filter[...]`, `range[...]` and `sort`,
//! and its evaluation over a table.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde_json::Value;

use crate::model::{FieldDef, Getter, Kind, Record, RenderCtx, Val};
use crate::store::Table;
use crate::time::{Ms, parse_timestamp};

/// Default and maximum page sizes of the real API.
pub(crate) const DEFAULT_PER_PAGE: usize = 30;
pub(crate) const MAX_PER_PAGE: usize = 100;

/// A client error the API reports as a 400 JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryError {
    pub(crate) error: &'static str,
    pub(crate) message: String,
}

/// Parsed query string of a list request.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListQuery {
    pub(crate) page: usize,
    pub(crate) per_page: usize,
    /// The client used `page[number]`/`page[size]` (Link headers answer in the same syntax).
    pub(crate) bracket_syntax: bool,
    pub(crate) filters: Vec<(String, Vec<String>)>,
    pub(crate) ranges: Vec<(String, String)>,
    pub(crate) sort: Option<String>,
    /// Every parameter except the page ones, in order, to rebuild Link URLs.
    pub(crate) others: Vec<(String, String)>,
}

fn parse_positive(value: &str) -> Option<usize> {
    value.trim().parse::<usize>().ok().filter(|&n| n > 0)
}

impl ListQuery {
    /// Parses the query pairs of a request URL. Never fails: bad page numbers fall back to the
    /// defaults, as Rails does; bad filters are reported when the query runs.
    pub(crate) fn parse(url: &url::Url) -> Self {
        let mut query = Self {
            page: 1,
            per_page: DEFAULT_PER_PAGE,
            ..Self::default()
        };
        for (key, value) in url.query_pairs() {
            let (key, value) = (key.into_owned(), value.into_owned());
            match key.as_str() {
                "page" | "page[number]" => {
                    query.bracket_syntax |= key == "page[number]";
                    query.page = parse_positive(&value).unwrap_or(1);
                    continue;
                }
                "per_page" | "page[size]" => {
                    query.bracket_syntax |= key == "page[size]";
                    query.per_page = parse_positive(&value)
                        .unwrap_or(DEFAULT_PER_PAGE)
                        .min(MAX_PER_PAGE);
                    continue;
                }
                _ => {}
            }
            if let Some(field) = key
                .strip_prefix("filter[")
                .and_then(|k| k.strip_suffix(']'))
            {
                let values = value
                    .split(',')
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
                    .collect();
                query.filters.push((field.to_owned(), values));
            } else if let Some(field) = key.strip_prefix("range[").and_then(|k| k.strip_suffix(']'))
            {
                query.ranges.push((field.to_owned(), value.clone()));
            } else if key == "sort" {
                query.sort = Some(value.clone());
            }
            if key != "access_token" {
                query.others.push((key, value));
            }
        }
        query
    }
}

/// Restrictions a nested route adds (`/v2/campus/1/locations` = locations with campus_id 1).
#[derive(Default)]
pub(crate) struct Scope<'a> {
    pub(crate) implicit: Vec<(&'static str, Vec<i64>)>,
    /// Only these user ids (for `/v2/campus/:id/users`, from campus_users).
    pub(crate) user_set: Option<&'a BTreeSet<i64>>,
}

/// One page of results.
pub(crate) struct Page {
    pub(crate) items: Vec<Value>,
    pub(crate) total: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Time(Ms),
}

fn parse_lit(kind: Kind, text: &str) -> Option<Lit> {
    match kind {
        Kind::Int | Kind::Ints => text.parse().ok().map(Lit::Int),
        Kind::Float => text.parse().ok().map(Lit::Float),
        Kind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "t" | "1" => Some(Lit::Bool(true)),
            "false" | "f" | "0" => Some(Lit::Bool(false)),
            _ => None,
        },
        Kind::Str => Some(Lit::Str(text.to_owned())),
        Kind::Time => parse_timestamp(text).map(Lit::Time),
    }
}

fn cmp_lit(val: &Val<'_>, lit: &Lit) -> Option<Ordering> {
    match (val, lit) {
        (Val::Int(a), Lit::Int(b)) => Some(a.cmp(b)),
        (Val::Int(a), Lit::Float(b)) => (*a as f64).partial_cmp(b),
        (Val::Float(a), Lit::Float(b)) => a.partial_cmp(b),
        (Val::Float(a), Lit::Int(b)) => a.partial_cmp(&(*b as f64)),
        (Val::Bool(a), Lit::Bool(b)) => Some(a.cmp(b)),
        (Val::Str(a), Lit::Str(b)) => Some(a.as_ref().cmp(b.as_str())),
        (Val::Time(a), Lit::Time(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn matches_any(val: &Val<'_>, lits: &[Lit]) -> bool {
    match val {
        Val::Null => false,
        Val::Ints(values) => values.iter().any(|v| lits.contains(&Lit::Int(*v))),
        other => lits
            .iter()
            .any(|lit| cmp_lit(other, lit) == Some(Ordering::Equal)),
    }
}

/// Orders two values; nulls sort after everything (PostgreSQL's default for ascending order).
fn cmp_vals(a: &Val<'_>, b: &Val<'_>) -> Ordering {
    match (a, b) {
        (Val::Null, Val::Null) => Ordering::Equal,
        (Val::Null, _) => Ordering::Greater,
        (_, Val::Null) => Ordering::Less,
        (Val::Int(x), Val::Int(y)) => x.cmp(y),
        (Val::Float(x), Val::Float(y)) => x.total_cmp(y),
        (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
        (Val::Str(x), Val::Str(y)) => x.cmp(y),
        (Val::Time(x), Val::Time(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

enum Pred<R: 'static> {
    Filter {
        get: Getter<R>,
        lits: Vec<Lit>,
    },
    Range {
        get: Getter<R>,
        lo: Option<Lit>,
        hi: Option<Lit>,
    },
}

impl<R> Pred<R> {
    fn test(&self, row: &R, now: Ms) -> bool {
        match self {
            Pred::Filter { get, lits } => matches_any(&get(row, now), lits),
            Pred::Range { get, lo, hi } => {
                let val = get(row, now);
                if val == Val::Null {
                    return false;
                }
                let above = lo.as_ref().is_none_or(|lo| {
                    matches!(cmp_lit(&val, lo), Some(Ordering::Greater | Ordering::Equal))
                });
                let below = hi.as_ref().is_none_or(|hi| {
                    matches!(cmp_lit(&val, hi), Some(Ordering::Less | Ordering::Equal))
                });
                above && below
            }
        }
    }
}

fn names<R>(fields: &[FieldDef<R>], keep: impl Fn(&FieldDef<R>) -> bool) -> String {
    fields
        .iter()
        .filter(|f| keep(f))
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn field<R: Record>(name: &str) -> Option<&'static FieldDef<R>> {
    R::FIELDS.iter().find(|f| f.name == name)
}

/// Runs a list query over a table and returns the requested page.
pub(crate) fn run<R: Record>(
    table: &Table<R>,
    query: &ListQuery,
    scope: &Scope<'_>,
    now: Ms,
    ctx: &RenderCtx<'_>,
) -> Result<Page, QueryError> {
    let mut preds: Vec<Pred<R>> = Vec::new();
    let mut id_filter: Option<Vec<i64>> = None;
    let mut user_filter: Option<Vec<i64>> = None;
    let (mut id_lo, mut id_hi) = (i64::MIN, i64::MAX);

    for (name, values) in &query.filters {
        let def = field::<R>(name).ok_or_else(|| QueryError {
            error: "Filter Error",
            message: format!(
                "Attributes {name} doesn't exists. You can only filter on: [{}]",
                names(R::FIELDS, |_| true)
            ),
        })?;
        let lits: Vec<Lit> = values
            .iter()
            .filter_map(|v| parse_lit(def.kind, v))
            .collect();
        let ints: Vec<i64> = lits
            .iter()
            .filter_map(|l| if let Lit::Int(i) = l { Some(*i) } else { None })
            .collect();
        if name == "id" {
            id_filter = Some(ints);
        } else if name == "user_id" && table_has_user_index::<R>() {
            user_filter = Some(ints);
        }
        preds.push(Pred::Filter { get: def.get, lits });
    }
    for (name, implicit) in &scope.implicit {
        let def = field::<R>(name).expect("nested routes only restrict known fields");
        if *name == "user_id" {
            user_filter = Some(match user_filter {
                Some(existing) => existing
                    .into_iter()
                    .filter(|id| implicit.contains(id))
                    .collect(),
                None => implicit.clone(),
            });
        }
        preds.push(Pred::Filter {
            get: def.get,
            lits: implicit.iter().map(|&v| Lit::Int(v)).collect(),
        });
    }
    for (name, raw) in &query.ranges {
        let def = field::<R>(name)
            .filter(|f| f.plain)
            .ok_or_else(|| QueryError {
                error: "Filter Error",
                message: format!(
                    "Attributes {name} doesn't exists. You can only range on: [{}]",
                    names(R::FIELDS, |f| f.plain)
                ),
            })?;
        let Some((lo_text, hi_text)) = raw.split_once(',') else {
            return Err(QueryError {
                error: "Filter Error",
                message: format!(
                    "range[{name}] must be two values separated by a comma (min,max); got {raw:?}"
                ),
            });
        };
        let bound = |text: &str| -> Result<Option<Lit>, QueryError> {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            parse_lit(def.kind, text).map(Some).ok_or_else(|| QueryError {
                error: "Filter Error",
                message: match def.kind {
                    Kind::Time => format!(
                        "range[{name}]: {text:?} is not a valid timestamp; use RFC 3339, e.g. 2017-11-22T13:41:00.825Z"
                    ),
                    _ => format!("range[{name}]: {text:?} is not a valid value"),
                },
            })
        };
        let (lo, hi) = (bound(lo_text)?, bound(hi_text)?);
        if name == "id" {
            // Every candidate source below is cut to [id_lo, id_hi], so no per-row check is
            // needed: a keyset page then costs one walk over the id range.
            if let Some(Lit::Int(lo)) = lo {
                id_lo = id_lo.max(lo);
            }
            if let Some(Lit::Int(hi)) = hi {
                id_hi = id_hi.min(hi);
            }
            continue;
        }
        preds.push(Pred::Range {
            get: def.get,
            lo,
            hi,
        });
    }

    let order: Vec<(&'static FieldDef<R>, bool)> = match &query.sort {
        None => R::DEFAULT_SORT
            .iter()
            .map(|&(name, desc)| (field::<R>(name).expect("default sort field exists"), desc))
            .collect(),
        Some(text) => {
            let mut order = Vec::new();
            for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (name, desc) = match part.strip_prefix('-') {
                    Some(name) => (name, true),
                    None => (part, false),
                };
                let def = field::<R>(name)
                    .filter(|f| f.plain && !R::UNSORTABLE.contains(&f.name))
                    .ok_or_else(|| QueryError {
                        error: "Sort Error",
                        message: format!(
                            "The {name} field is not sortable. You can only sort on: [{}]",
                            names(R::FIELDS, |f| f.plain && !R::UNSORTABLE.contains(&f.name))
                        ),
                    })?;
                order.push((def, desc));
            }
            order
        }
    };

    // Candidates in ascending id order, narrowed by the cheapest index available.
    let rows = &table.rows;
    let narrowed = id_filter.is_some() || user_filter.is_some();
    let candidates: Box<dyn DoubleEndedIterator<Item = &R> + '_> = if let Some(mut ids) = id_filter
    {
        ids.retain(|id| (id_lo..=id_hi).contains(id));
        ids.sort_unstable();
        ids.dedup();
        Box::new(ids.into_iter().filter_map(move |id| rows.get(&id)))
    } else if let Some(users) = user_filter {
        let mut ids: Vec<i64> = users
            .iter()
            .flat_map(|&user| table.ids_of_user(user).iter().copied())
            .collect();
        ids.retain(|id| (id_lo..=id_hi).contains(id));
        ids.sort_unstable();
        ids.dedup();
        Box::new(ids.into_iter().filter_map(move |id| rows.get(&id)))
    } else if id_lo > id_hi {
        Box::new(std::iter::empty())
    } else if let Some(set) = scope.user_set {
        Box::new(set.range(id_lo..=id_hi).filter_map(move |id| rows.get(id)))
    } else {
        Box::new(rows.range(id_lo..=id_hi).map(|(_, row)| row))
    };

    let offset = (query.page - 1).saturating_mul(query.per_page);
    let wanted = offset..offset.saturating_add(query.per_page);
    let keep = |row: &&R| preds.iter().all(|p| p.test(row, now));

    let by_id = order.len() == 1 && order[0].0.name == "id";
    let whole_range = preds.is_empty() && !narrowed && scope.user_set.is_none();
    if by_id && whole_range {
        // Only an id range: count by binary search and render just the page.
        if id_lo > id_hi {
            return Ok(Page {
                items: Vec::new(),
                total: 0,
            });
        }
        let total = table.count_id_range(id_lo, id_hi);
        let range = rows.range(id_lo..=id_hi).map(|(_, row)| row);
        let iter: Box<dyn Iterator<Item = &R>> = if order[0].1 {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        let items = iter
            .skip(offset)
            .take(query.per_page)
            .map(|row| row.render(ctx))
            .collect();
        return Ok(Page { items, total });
    }
    if by_id {
        // Stream in id order: count every match, render only the page.
        let iter: Box<dyn Iterator<Item = &R>> = if order[0].1 {
            Box::new(candidates.rev())
        } else {
            Box::new(candidates)
        };
        let mut total = 0;
        let mut items = Vec::new();
        for row in iter.filter(keep) {
            if wanted.contains(&total) {
                items.push(row.render(ctx));
            }
            total += 1;
        }
        return Ok(Page { items, total });
    }

    // Read each sort key once per row, not once per comparison.
    let mut matched: Vec<(Vec<Val<'_>>, &R)> = candidates
        .filter(keep)
        .map(|row| {
            (
                order.iter().map(|(def, _)| (def.get)(row, now)).collect(),
                row,
            )
        })
        .collect();
    matched.sort_by(|(a_keys, a), (b_keys, b)| {
        for (index, (_, desc)) in order.iter().enumerate() {
            let ordering = cmp_vals(&a_keys[index], &b_keys[index]);
            let ordering = if *desc { ordering.reverse() } else { ordering };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        a.id().cmp(&b.id())
    });
    let total = matched.len();
    let items = matched
        .iter()
        .skip(offset)
        .take(query.per_page)
        .map(|(_, row)| row.render(ctx))
        .collect();
    Ok(Page { items, total })
}

fn table_has_user_index<R: Record>() -> bool {
    R::USER_INDEX
}
