//! The page pipeline against a scripted page source: every pass shape commits through one
//! place, and every shape refuses a page that is empty while `X-Total` says rows remain.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use ft_api::models::Location;
use ft_api::{ClientSecret, FtClient, Links, Page, PagingError, RequestMeta};
use ft_store::test_support::TestDb;
use ft_store::{Column, Fence, IdsWhere, Lane, NewTask, Table};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};

use super::*;
use crate::progress::Progress;
use crate::resource::{CampusFilter, Listing};
use crate::task::{PAYLOAD_VERSION, PassMode, TaskPayload};

/// A page source that answers with scripted pages of locations, in order, and records the
/// queries it was sent.
struct Scripted {
    pages: Mutex<VecDeque<(Vec<i64>, Option<u64>)>>,
    queries: Mutex<Vec<Query>>,
}

impl Scripted {
    fn new(pages: impl IntoIterator<Item = (Vec<i64>, Option<u64>)>) -> Scripted {
        Scripted {
            pages: Mutex::new(pages.into_iter().collect()),
            queries: Mutex::new(Vec::new()),
        }
    }

    fn queries(&self) -> Vec<Query> {
        self.queries.lock().unwrap().clone()
    }

    fn left(&self) -> usize {
        self.pages.lock().unwrap().len()
    }
}

fn location(id: i64) -> Box<RawValue> {
    let json = serde_json::json!({
        "id": id,
        "begin_at": "2026-11-01T10:00:00.000Z",
        "end_at": null,
        "primary": true,
        "host": format!("c1r1s{id}"),
        "campus_id": 1,
        "user": {"id": 1000 + id, "login": format!("u{id}")},
    });
    RawValue::from_string(json.to_string()).unwrap()
}

impl Model for Scripted {
    fn table(&self) -> Table {
        Table::Locations
    }
    fn path(&self) -> &'static str {
        "/v2/locations"
    }
    fn path_for(&self, _campus: Option<i64>) -> Result<String> {
        Ok("/v2/locations".to_owned())
    }
    fn filter(&self, query: Query, name: &str, values: &[i64]) -> Query {
        query.filter(name, values.iter().copied())
    }
    fn fetch<'a>(
        &'a self,
        _client: &'a FtClient,
        _path: &'a str,
        query: &'a Query,
    ) -> BoxFuture<'a, Result<Fetched>> {
        self.queries.lock().unwrap().push(query.clone());
        let (ids, total) = self
            .pages
            .lock()
            .unwrap()
            .pop_front()
            .expect("the pass asked for more pages than scripted");
        Box::pin(async move {
            let raw: Vec<Box<RawValue>> = ids.iter().map(|&id| location(id)).collect();
            let items: Vec<Location> = raw
                .iter()
                .map(|r| serde_json::from_str(r.get()).unwrap())
                .collect();
            let page = Page {
                items,
                raw,
                page: 1,
                per_page: 2,
                total,
                links: Links::default(),
                meta: RequestMeta {
                    status: 200,
                    ..RequestMeta::default()
                },
                rejected: Vec::new(),
            };
            Fetched::map(page, crate::mapping::locations, |_| true)
        })
    }
}

struct Harness {
    db: TestDb,
    client: FtClient,
    fence: Fence,
    progress: ProgressTx,
    events: mpsc::UnboundedReceiver<Progress>,
    _stop: watch::Sender<bool>,
    shutdown: watch::Receiver<bool>,
}

impl Harness {
    fn new() -> Harness {
        let db = TestDb::sqlite();
        let now = Utc::now().naive_utc();
        db.store()
            .enqueue(&NewTask {
                kind: "locations".to_owned(),
                scope: "campus:1".to_owned(),
                payload: serde_json::json!({}),
                lane: Lane::Hot,
                priority: 0,
                next_run_at: now,
                dedupe_key: None,
            })
            .unwrap();
        let fence = db
            .store()
            .claim("pipeline-test", Duration::from_secs(60), now)
            .unwrap()
            .expect("the task just enqueued")
            .fence;
        // Never contacted: every page comes from the scripted source.
        let client = FtClient::builder()
            .base_url("http://127.0.0.1:9")
            .client_id("unused")
            .client_secret(ClientSecret::new("unused"))
            .build()
            .unwrap();
        let (progress, events) = mpsc::unbounded_channel();
        let (stop, shutdown) = watch::channel(false);
        Harness {
            db,
            client,
            fence,
            progress,
            events,
            _stop: stop,
            shutdown,
        }
    }

    fn ctx(&self) -> PassCtx<'_> {
        PassCtx {
            client: &self.client,
            store: self.db.store(),
            fence: &self.fence,
            progress: &self.progress,
            shutdown: self.shutdown.clone(),
            per_page: 2,
            archive: None,
            priority: 0,
            lane: Lane::Hot,
            max_relation_users: 25,
            scope: "campus:1".to_owned(),
            members: Vec::new(),
            stats: PassStats::default(),
        }
    }

    /// Stores locations with these ids (through the pipeline, as a walk would).
    async fn seed(&self, ids: &[i64]) {
        let seed = Scripted::new([(ids.to_vec(), Some(ids.len() as u64))]);
        let mut ctx = self.ctx();
        ctx.per_page = 100;
        keyset(&mut ctx, walk(&seed, None, CursorPlan::AtEnd(None)))
            .await
            .unwrap();
    }

    fn live_ids(&self) -> Vec<i64> {
        self.db
            .store()
            .live_ids(Table::Locations, IdsWhere::Eq(Column::CampusId, 1))
            .unwrap()
    }

    fn page_events(&mut self) -> Vec<(u64, Option<u64>, u64)> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            if let Progress::Page {
                rows,
                total,
                pages_done,
                ..
            } = e
            {
                out.push((rows, total, pages_done));
            }
        }
        out
    }
}

fn until() -> chrono::NaiveDateTime {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0)
        .unwrap()
        .naive_utc()
}

fn pass_cursor() -> PassCursor {
    PassCursor {
        resource: "locations".to_owned(),
        since: None,
        until: until(),
        watermark: None,
    }
}

fn walk<'a>(model: &'a Scripted, expect: Option<Vec<i64>>, cursor: CursorPlan) -> Keyset<'a> {
    walk_of(model, expect, cursor)
}

fn walk_of<'a>(model: &'a dyn Model, expect: Option<Vec<i64>>, cursor: CursorPlan) -> Keyset<'a> {
    Keyset {
        model,
        path: "/v2/locations".to_owned(),
        base: Query::new().filter("campus_id", [1]),
        resume: Resume::default(),
        cursor,
        enqueue_reason: None,
        expect,
        yield_after_page: true,
    }
}

fn is_empty_page(e: &SyncError, remaining: u64) -> bool {
    matches!(e, SyncError::Paging { source: PagingError::EmptyPage { remaining: r }, .. } if *r == remaining)
}

#[tokio::test]
async fn a_keyset_walk_commits_each_page_with_its_cursor_and_reports_progress() {
    let mut h = Harness::new();
    let model = Scripted::new([
        (vec![1, 2], Some(5)),
        (vec![3, 4], Some(3)),
        (vec![5], Some(1)),
    ]);
    let mut ctx = h.ctx();
    let end = keyset(
        &mut ctx,
        walk(&model, None, CursorPlan::Pass(pass_cursor())),
    )
    .await
    .unwrap();
    assert_eq!(end, PassEnd::Complete);
    assert_eq!(ctx.stats, PassStats { rows: 5, pages: 3 });
    drop(ctx);
    assert_eq!(h.live_ids(), vec![1, 2, 3, 4, 5]);
    let ranges: Vec<Option<String>> = model
        .queries()
        .iter()
        .map(|q| q.get("range[id]").map(str::to_owned))
        .collect();
    assert_eq!(
        ranges,
        [
            None,
            Some("3,2147483647".to_owned()),
            Some("5,2147483647".to_owned())
        ]
    );
    assert!(model.queries().iter().all(|q| q.get("sort") == Some("id")));
    let cursor =
        h.db.store()
            .cursor("locations", "campus:1")
            .unwrap()
            .unwrap();
    assert_eq!(
        cursor.watermark,
        Some(until()),
        "complete: watermark at the window's end"
    );
    assert_eq!(cursor.last_id, None);
    assert_eq!(
        h.page_events(),
        [(2, Some(5), 1), (4, Some(5), 2), (5, Some(5), 3)]
    );
    assert_eq!(h.db.store().fetch_log_count().unwrap(), 3);
}

#[tokio::test]
async fn a_keyset_walk_refuses_an_empty_page_while_rows_remain_and_keeps_its_place() {
    let h = Harness::new();
    let model = Scripted::new([(vec![1, 2], Some(4)), (vec![], Some(2))]);
    let mut ctx = h.ctx();
    let err = keyset(
        &mut ctx,
        walk(&model, None, CursorPlan::Pass(pass_cursor())),
    )
    .await
    .unwrap_err();
    assert!(is_empty_page(&err, 2), "{err}");
    assert_eq!(ctx.stats.pages, 1, "the empty page was not committed");
    drop(ctx);
    let cursor =
        h.db.store()
            .cursor("locations", "campus:1")
            .unwrap()
            .unwrap();
    assert_eq!(
        cursor.last_id,
        Some(2),
        "a retry resumes after the last good page"
    );
    assert_eq!(cursor.watermark, None, "the pass is not complete");
}

/// A server that honours `range[id]` but not `sort`: newest first, `per_page` at most.
struct Unsorted {
    rows: Vec<i64>,
    queries: Mutex<Vec<Query>>,
}

impl Model for Unsorted {
    fn table(&self) -> Table {
        Table::Locations
    }
    fn path(&self) -> &'static str {
        Scripted::new([]).path()
    }
    fn path_for(&self, campus: Option<i64>) -> Result<String> {
        Scripted::new([]).path_for(campus)
    }
    fn filter(&self, query: Query, name: &str, values: &[i64]) -> Query {
        Scripted::new([]).filter(query, name, values)
    }
    fn fetch<'a>(
        &'a self,
        _client: &'a FtClient,
        _path: &'a str,
        query: &'a Query,
    ) -> BoxFuture<'a, Result<Fetched>> {
        self.queries.lock().unwrap().push(query.clone());
        let (lo, hi) = query.get("range[id]").map_or((1, i64::MAX), |r| {
            let (lo, hi) = r.split_once(',').unwrap();
            (lo.parse().unwrap(), hi.parse().unwrap())
        });
        let per_page: usize = query.get("per_page").unwrap().parse().unwrap();
        let inside: Vec<i64> = self
            .rows
            .iter()
            .copied()
            .filter(|&id| id >= lo && id <= hi)
            .collect();
        let page: Vec<i64> = inside.iter().rev().take(per_page).copied().collect();
        let total = inside.len() as u64;
        let scripted = Scripted::new([(page, Some(total))]);
        Box::pin(async move { scripted.fetch(_client, _path, query).await })
    }
}

#[tokio::test]
async fn a_walk_falls_back_to_id_windows_when_the_server_ignores_sort() {
    let h = Harness::new();
    let model = Unsorted {
        rows: vec![2, 3, 5, 8, 13, 21, 34],
        queries: Mutex::new(Vec::new()),
    };
    let end = keyset(
        &mut h.ctx(),
        walk_of(&model, None, CursorPlan::Pass(pass_cursor())),
    )
    .await
    .unwrap();
    assert_eq!(end, PassEnd::Complete);
    assert_eq!(h.live_ids(), vec![2, 3, 5, 8, 13, 21, 34], "no row skipped");
    let cursor =
        h.db.store()
            .cursor("locations", "campus:1")
            .unwrap()
            .unwrap();
    assert_eq!(cursor.watermark, Some(until()), "the pass completed");
    let queries = model.queries.lock().unwrap().clone();
    assert!(queries.len() > 2, "windows after the unsorted page");
    assert!(
        queries[1..].iter().all(|q| q.get("range[id]").is_some()),
        "every window is bounded"
    );
}

#[tokio::test]
async fn a_server_that_ignores_range_too_is_an_error_not_a_loop() {
    let h = Harness::new();
    // Newest first, whatever the query.
    let model = Scripted::new([(vec![9, 4], Some(4)), (vec![9, 4], Some(4))]);
    let err = keyset(
        &mut h.ctx(),
        walk(&model, None, CursorPlan::Pass(pass_cursor())),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::Paging {
                source: PagingError::OutsideWindow { id: 9, .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(
        h.live_ids().is_empty(),
        "nothing of an unordered answer was committed"
    );
}

#[tokio::test]
async fn a_user_batch_marks_unseen_rows_deleted_with_its_last_page_only() {
    let h = Harness::new();
    // Stored: 1..=5. The batch returns 1, 2, 4 over two pages.
    h.seed(&[1, 2, 3, 4, 5]).await;
    let model = Scripted::new([(vec![1, 2], Some(3)), (vec![4], Some(1))]);
    let end = keyset(
        &mut h.ctx(),
        walk(&model, Some(vec![1, 2, 3, 4, 5]), CursorPlan::AtEnd(None)),
    )
    .await
    .unwrap();
    assert_eq!(end, PassEnd::Complete);
    assert_eq!(h.live_ids(), vec![1, 2, 4]);
}

#[tokio::test]
async fn a_user_batch_refuses_an_empty_page_and_deletes_nothing() {
    let h = Harness::new();
    h.seed(&[1, 2]).await;
    let model = Scripted::new([(vec![], Some(2))]);
    let err = keyset(
        &mut h.ctx(),
        walk(&model, Some(vec![1, 2]), CursorPlan::AtEnd(None)),
    )
    .await
    .unwrap_err();
    assert!(is_empty_page(&err, 2), "{err}");
    assert_eq!(h.live_ids(), vec![1, 2], "an empty page deletes nothing");
}

#[tokio::test]
async fn an_id_batch_names_what_the_api_did_not_return_and_refuses_an_empty_page() {
    let h = Harness::new();
    let model = Scripted::new([(vec![2, 3], Some(2)), (vec![], Some(3))]);
    let mut ctx = h.ctx();
    let (fetched, gone) = fetch_ids(&mut ctx, &model, &[1, 2, 3, 4])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fetched.ids, vec![2, 3]);
    assert_eq!(gone, vec![1, 4]);
    let q = &model.queries()[0];
    assert_eq!(q.get("filter[id]"), Some("1,2,3,4"));
    assert_eq!(
        q.get("filter[campus_id]"),
        None,
        "asked for by id without the scope filter"
    );
    let err = fetch_ids(&mut ctx, &model, &[5, 6, 7])
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(is_empty_page(&err, 3), "{err}");
}

fn deletion_payload() -> TaskPayload {
    TaskPayload {
        version: PAYLOAD_VERSION,
        listing: Listing::LocationsDeletions,
        campus_id: Some(1),
        campus_set: None,
        ids: None,
        mode: PassMode::Full,
        since: None,
        until: until().and_utc(),
        enqueue_changed_users: false,
        after: Vec::new(),
        max_users: None,
    }
}

#[tokio::test]
async fn a_deletion_check_confirms_candidates_by_id_before_marking_them_deleted() {
    let h = Harness::new();
    h.seed(&[1, 2, 3, 4, 5]).await;
    // Counts agree (5 stored, 5 served): one request, nothing deleted.
    let model = Scripted::new([(vec![1, 2], Some(5))]);
    let mut ctx = h.ctx();
    let end = crate::relations::deletions_with(
        &mut ctx,
        &deletion_payload(),
        &model,
        CampusFilter::Filter("campus_id"),
    )
    .await
    .unwrap();
    assert_eq!(end, PassEnd::Complete);
    assert_eq!(model.left(), 0);
    assert_eq!(model.queries()[0].get("filter[campus_id]"), Some("1"));
    drop(ctx);

    let model = Scripted::new([
        // 1..MAX: 4 rows served, 5 stored: counts differ; the page covers 1..2.
        (vec![1, 2], Some(4)),
        // The rest is split at the stored ids' median (3..3 and 4..MAX).
        (vec![], Some(0)),
        (vec![4, 5], Some(2)),
        // Candidate 3 asked for by id: gone, as the whole batch is...
        (vec![], Some(0)),
        // ...so a row the API just served (2) is asked for: it comes back, the answer holds.
        (vec![2], Some(1)),
    ]);
    let end = crate::relations::deletions_with(
        &mut h.ctx(),
        &deletion_payload(),
        &model,
        CampusFilter::Filter("campus_id"),
    )
    .await
    .unwrap();
    assert_eq!(end, PassEnd::Complete);
    assert_eq!(model.left(), 0);
    assert_eq!(h.live_ids(), vec![1, 2, 4, 5]);
    let queries = model.queries();
    assert_eq!(queries[3].get("filter[id]"), Some("3"));
    assert_eq!(queries[4].get("filter[id]"), Some("2"), "the canary");
}

#[tokio::test]
async fn a_batch_that_misses_every_id_deletes_nothing_unless_a_known_row_confirms_it() {
    let h = Harness::new();
    h.seed(&[1, 2, 3]).await;
    let mut ctx = h.ctx();
    let mut page_no = 4;
    // Some ids came back: the answer is trusted as it is, no extra request.
    let model = Scripted::new([]);
    let gone = ctx
        .verified_gone(&model, &[1, 2], vec![2], None, &mut page_no)
        .await
        .unwrap();
    assert_eq!((gone, page_no), (vec![2], 4));
    // None came back, and the canary (the largest stored live row outside the batch: 3) is
    // missing too: the response lost everything, nothing is deleted.
    let model = Scripted::new([(vec![], Some(0))]);
    let gone = ctx
        .verified_gone(&model, &[1, 2], vec![1, 2], None, &mut page_no)
        .await
        .unwrap();
    assert!(gone.is_empty());
    assert_eq!(model.queries()[0].get("filter[id]"), Some("3"));
    assert_eq!(page_no, 5, "the canary's page was committed and numbered");
    // None came back and the canary did: they are gone.
    let model = Scripted::new([(vec![3], Some(1))]);
    let gone = ctx
        .verified_gone(&model, &[1, 2], vec![1, 2], Some(3), &mut page_no)
        .await
        .unwrap();
    assert_eq!(gone, vec![1, 2]);
}

#[tokio::test]
async fn a_deletion_check_refuses_an_empty_range_page_and_deletes_nothing() {
    let h = Harness::new();
    h.seed(&[1, 2, 3]).await;
    let model = Scripted::new([(vec![], Some(2))]);
    let err = crate::relations::deletions_with(
        &mut h.ctx(),
        &deletion_payload(),
        &model,
        CampusFilter::Filter("campus_id"),
    )
    .await
    .unwrap_err();
    assert!(is_empty_page(&err, 2), "{err}");
    assert_eq!(h.live_ids(), vec![1, 2, 3]);
}

#[test]
fn an_item_that_does_not_map_is_quarantined_and_the_others_of_its_page_are_kept() {
    let raw: Vec<Box<RawValue>> = [
        r#"{"id":1,"user_id":10,"campus_id":1,"is_primary":true}"#,
        r#"{"id":2,"user_id":11,"is_primary":true}"#,
        r#"{"id":3,"user_id":12,"campus_id":1,"is_primary":false}"#,
    ]
    .into_iter()
    .map(|s| RawValue::from_string(s.to_owned()).unwrap())
    .collect();
    let items: Vec<ft_api::models::CampusUser> = raw
        .iter()
        .map(|r| serde_json::from_str(r.get()).unwrap())
        .collect();
    let page = Page {
        items,
        raw,
        page: 1,
        per_page: 3,
        total: Some(3),
        links: Links::default(),
        meta: RequestMeta::default(),
        rejected: Vec::new(),
    };
    let fetched = Fetched::map(page, crate::mapping::campus_users, |_| true).unwrap();
    assert_eq!(fetched.ids, [1, 2, 3], "every id still counts for paging");
    assert_eq!(fetched.sent, 3);
    assert_eq!(fetched.mapped.rows.ids(), [1, 3]);
    let kept: Vec<&str> = fetched.raw.iter().map(|r| r.get()).collect();
    assert_eq!(kept.len(), 2);
    assert!(kept[1].contains(r#""id":3"#), "{kept:?}");
    assert_eq!(fetched.quarantine.len(), 1);
    let q = &fetched.quarantine[0];
    assert_eq!((q.resource.as_str(), q.item_id), ("campus_users", Some(2)));
    assert!(q.reason.contains("campus_id"), "{}", q.reason);
}
