//! Several 42 applications behind one client: each with its own credentials, token cache and
//! budget (a pacer that learns its limits from the response headers), and a rotation that sends
//! each request through the application whose budget frees up soonest.
//!
//! An application whose secret is rejected (`invalid_client`, after its next secret was tried
//! too) leaves the rotation with an error in the log and a visible state in
//! [`crate::FtClient::applications`]; the others go on. Only when every application is rejected
//! does a request fail with [`crate::ApiError::SecretRejected`]. A client with a single
//! application behaves exactly as before this module existed.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use crate::config::RateConfig;
use crate::event::BudgetSnapshot;
use crate::pacer::Pacer;
use crate::secret::{ClientId, ClientSecret};
use crate::token::TokenCache;

/// The credentials of one more application, for [`crate::FtClientBuilder::application`].
///
/// `Debug` shows the client id only.
#[derive(Clone)]
pub struct Application {
    /// The application's UID.
    pub client_id: ClientId,
    /// Its current secret.
    pub secret: ClientSecret,
    /// Its next secret (used when the current one is rejected), if any.
    pub next_secret: Option<ClientSecret>,
    /// Its server limits; `None` uses the builder's [`crate::FtClientBuilder::rate`]. The
    /// server's rate-limit headers replace them either way once a response arrives.
    pub rate: Option<RateConfig>,
}

impl Application {
    /// An application with the builder's default limits and no next secret.
    pub fn new(client_id: impl Into<ClientId>, secret: ClientSecret) -> Application {
        Application {
            client_id: client_id.into(),
            secret,
            next_secret: None,
            rate: None,
        }
    }
}

impl fmt::Debug for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Application")
            .field("client_id", &self.client_id.as_str())
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

/// Whether an application is in the rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplicationState {
    /// Requests may go through it.
    Active,
    /// Its secret (and its next secret, if configured) was rejected; no request uses it any
    /// more in this process. Configure a new secret and restart.
    Rejected {
        /// When it was taken out of the rotation.
        since: DateTime<Utc>,
        /// When its secret stopped being valid, if the server said so earlier.
        secret_valid_until: Option<DateTime<Utc>>,
    },
}

/// One application as seen by [`crate::FtClient::applications`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationStatus {
    /// The application's UID.
    pub client_id: String,
    /// In the rotation or not.
    pub state: ApplicationState,
    /// Requests sent through it (token requests included).
    pub requests: u64,
    /// Its budget in force and what its server headers last said.
    pub budget: BudgetSnapshot,
    /// When its client secret stops working, as the token endpoint last said (`None` before
    /// the first token, or when the server does not say).
    pub secret_valid_until: Option<DateTime<Utc>>,
}

/// One application at run time.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) client_id: ClientId,
    /// The current secret, then the next one if configured.
    pub(crate) secrets: Vec<ClientSecret>,
    pub(crate) pacer: Pacer,
    pub(crate) token: TokenCache,
    pub(crate) requests: AtomicU64,
    rejected: Mutex<Option<ApplicationState>>,
    /// Set once the shared budget's history of this application was loaded into the pacer.
    pub(crate) history_loaded: tokio::sync::OnceCell<()>,
}

impl App {
    pub(crate) fn new(client_id: ClientId, secrets: Vec<ClientSecret>, pacer: Pacer) -> App {
        App {
            client_id,
            secrets,
            pacer,
            token: TokenCache::default(),
            requests: AtomicU64::new(0),
            rejected: Mutex::new(None),
            history_loaded: tokio::sync::OnceCell::new(),
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// Takes the application out of the rotation; returns false when it already was.
    pub(crate) fn reject(&self, now: DateTime<Utc>, valid_until: Option<DateTime<Utc>>) -> bool {
        let mut state = self.rejected.lock().unwrap_or_else(|e| e.into_inner());
        if state.is_some() {
            return false;
        }
        *state = Some(ApplicationState::Rejected {
            since: now,
            secret_valid_until: valid_until,
        });
        true
    }

    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn status(&self) -> ApplicationStatus {
        ApplicationStatus {
            client_id: self.client_id.as_str().to_owned(),
            state: self
                .rejected
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or(ApplicationState::Active),
            requests: self.requests.load(Ordering::Relaxed),
            budget: self.pacer.snapshot(),
            secret_valid_until: *self
                .token
                .secret_valid_until
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        }
    }
}
