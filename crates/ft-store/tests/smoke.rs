//! First end-to-end check of the store on both backends.

use ft_store::rows::CampusRow;
use ft_store::test_support::TestDb;
use ft_store::{ApplyPage, Rows, Table};

#[test]
fn apply_page_writes_rows_on_every_backend() {
    for db in TestDb::all() {
        let store = db.store();
        let row = CampusRow {
            id: 1,
            name: "Paris".into(),
            time_zone: None,
            country: None,
            city: None,
            active: Some(true),
            public: None,
            users_count: Some(3),
            raw: r#"{"id":1,"name":"Paris"}"#.into(),
        };
        let outcome = store
            .apply_page(ApplyPage::rows(Rows::Campuses(vec![row.clone()])))
            .unwrap();
        assert_eq!(outcome.written, 1, "{:?}", db.backend());
        assert_eq!(store.count(Table::Campuses, false).unwrap(), 1);
        // PostgreSQL normalises JSONB text, so raw is compared as JSON.
        let Rows::Campuses(mut loaded) = store.load_rows(Table::Campuses).unwrap() else {
            panic!("load_rows(Campuses) returned another table");
        };
        let raw: serde_json::Value = serde_json::from_str(&loaded[0].raw).unwrap();
        assert_eq!(raw, serde_json::json!({"id": 1, "name": "Paris"}));
        loaded[0].raw = row.raw.clone();
        assert_eq!(loaded, vec![row]);
    }
}
