//! Serialisation of the `raw` column: JSON text in Rust, JSONB on PostgreSQL, TEXT on SQLite.
//!
//! The rows carry the item as JSON text, so PostgreSQL gets it in JSONB's binary input format
//! (a version byte followed by the text) without a parse-and-reserialise round trip in Rust; the
//! server validates it.

use std::io::Write;

use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sqlite::{Sqlite, SqliteValue};

use crate::schema::sql_types::RawJson;

/// The only JSONB binary format version PostgreSQL defines.
const JSONB_VERSION: u8 = 1;

/// The insert-side wrapper of the `raw` column. Row structs keep `raw: String` and convert
/// through this (`#[diesel(serialize_as = RawJsonText)]`), because `String` itself cannot be given
/// a Diesel expression impl for a foreign SQL type outside Diesel.
#[derive(Debug, Clone, PartialEq, Eq, diesel::expression::AsExpression)]
#[diesel(sql_type = RawJson)]
pub struct RawJsonText(pub String);

impl From<String> for RawJsonText {
    fn from(text: String) -> Self {
        RawJsonText(text)
    }
}

impl ToSql<RawJson, Pg> for RawJsonText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <str as ToSql<RawJson, Pg>>::to_sql(self.0.as_str(), out)
    }
}

impl ToSql<RawJson, Sqlite> for RawJsonText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.as_str());
        Ok(IsNull::No)
    }
}

impl ToSql<RawJson, Pg> for String {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <str as ToSql<RawJson, Pg>>::to_sql(self.as_str(), out)
    }
}

impl ToSql<RawJson, Pg> for str {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(&[JSONB_VERSION])?;
        out.write_all(self.as_bytes())?;
        Ok(IsNull::No)
    }
}

impl ToSql<RawJson, Sqlite> for String {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.as_str());
        Ok(IsNull::No)
    }
}

impl ToSql<RawJson, Sqlite> for str {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self);
        Ok(IsNull::No)
    }
}

impl FromSql<RawJson, Pg> for String {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        match value.as_bytes().split_first() {
            Some((&JSONB_VERSION, text)) => Ok(std::str::from_utf8(text)?.to_owned()),
            Some((version, _)) => Err(format!("unsupported JSONB version {version}").into()),
            None => Err("empty JSONB value".into()),
        }
    }
}

impl FromSql<RawJson, Sqlite> for String {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(value)
    }
}
