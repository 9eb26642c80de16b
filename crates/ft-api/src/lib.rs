//! The typed 42 API client: OAuth2 client-credentials tokens, a global pacer, retries,
//! pagination and lenient models.
