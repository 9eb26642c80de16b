//! `ft42 migrate`.

use crate::config::Settings;
use crate::exit::Exit;

use super::support::open_migrated;

/// Applies pending migrations and says how many ran.
pub(crate) async fn migrate(settings: &Settings) -> anyhow::Result<Exit> {
    let (_, applied) = open_migrated(settings).await?;
    let db = settings.database_url_redacted();
    if applied == 0 {
        println!("{db}: schema already up to date");
    } else {
        println!("{db}: applied {applied} migration(s); schema up to date");
    }
    Ok(Exit::Ok)
}
