//! The typed 42 API client: OAuth2 client-credentials tokens, a global pacer, retries,
//! pagination and lenient models.
//!
//! One [`FtClient`] (cheap to clone) owns a token cache, one request budget shared by every
//! request (token requests included) and counters. Every call goes through the same loop: get a
//! usable token (single flight), wait for the budget, send, then classify the answer: 2xx is
//! decoded, 401 drops the token and replays once, 429 pauses the budget for `Retry-After`,
//! transport errors, timeouts, 5xx and HTML challenge pages back off with full jitter, and other
//! 4xx fail at once.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ft_api::ApiError> {
//! use ft_api::{ClientSecret, FtClient, Query, models::User};
//! use futures::TryStreamExt;
//!
//! let client = FtClient::builder()
//!     .client_id("u-s4t2ud-…")
//!     .client_secret(ClientSecret::new("s-s4t2ud-…"))
//!     .build()?;
//! let q = Query::new().sort(["id"]);
//! let pages = client.stream_pages::<User>("/v2/campus/1/users", q);
//! futures::pin_mut!(pages);
//! while let Some(page) = pages.try_next().await? {
//!     println!("page {} of {:?}: {} users", page.page, page.total_pages(), page.items.len());
//! }
//! # Ok(()) }
//! ```
//!
//! Invariants: secrets never reach logs or errors (redacted newtypes); no request leaves
//! without a token from both pacing buckets; an item without an `id` is a decode error, never a
//! dropped row; each page keeps the raw JSON of each item.

mod apps;
mod client;
mod clock;
mod config;
mod decode;
pub mod endpoints;
mod error;
mod event;
pub mod models;
mod pacer;
mod page;
mod pager;
mod query;
mod secret;
mod shared_budget;
mod token;

pub use apps::{Application, ApplicationState, ApplicationStatus};
pub use client::{DEFAULT_BASE_URL, DEFAULT_USER_AGENT, FtClient, FtClientBuilder};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{RateConfig, RetryConfig};
pub use error::ApiError;
pub use event::{BudgetSnapshot, ClientEvent, ClientStats};
pub use models::TokenInfo;
pub use pacer::{BucketParams, DEFAULT_JITTER_MARGIN};
pub use page::{Links, Page, RejectedItem, RequestMeta};
pub use pager::{
    ID_MAX, IdWindows, Identified, KeysetPager, PageStep, PagingError, check_ascending,
    check_in_window,
};
pub use query::{DEFAULT_PER_PAGE, Query, rfc3339};
pub use secret::{AccessToken, ClientId, ClientSecret};
pub use shared_budget::{
    HistoryFuture, ReserveFuture, SharedBudget, SharedBudgetError, SharedLimits,
};
pub use token::{SecretExpiry, TokenStatus};

/// `Result` with this crate's error.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;
