//! Reads for operations: requests per clock hour for the status page's burn chart.

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use ft_store::test_support::TestDb;
use ft_store::{ApplyPage, FetchLogEntry, Rows};

fn at(hour: u32, minute: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 12, 5)
        .unwrap()
        .and_hms_opt(hour, minute, 0)
        .unwrap()
}

fn logged(at: NaiveDateTime, retries: i32) -> ApplyPage {
    ApplyPage {
        fetch_log: Some(FetchLogEntry {
            at,
            endpoint: "/v2/users".into(),
            scope: "campus:1".into(),
            page: Some(1),
            status: 200,
            items: 0,
            retries,
            wait_ms: 0,
            token_refreshed: false,
            task_id: None,
            request_id: None,
        }),
        ..ApplyPage::rows(Rows::Users(Vec::new()))
    }
}

#[test]
fn requests_are_counted_per_clock_hour_with_retries_and_empty_hours() {
    for db in TestDb::all() {
        let store = db.store();
        // 07:59 is outside a three-hour window ending in the 10:xx hour; 08:00 is inside.
        for (time, retries) in [
            (at(7, 59), 0),
            (at(8, 0), 0),
            (at(8, 30), 2),
            (at(10, 5), 0),
            (at(10, 6), 0),
        ] {
            store.apply_page(logged(time, retries)).unwrap();
        }
        let hours = store.hourly_requests(at(10, 40), 3).unwrap();
        let got: Vec<(NaiveDateTime, i64)> = hours.iter().map(|h| (h.hour, h.requests)).collect();
        assert_eq!(
            got,
            vec![(at(8, 0), 4), (at(9, 0), 0), (at(10, 0), 2)],
            "{:?}",
            db.backend()
        );
        assert_eq!(hours[2].hour - hours[0].hour, TimeDelta::hours(2));
    }
}
