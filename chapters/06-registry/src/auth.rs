//! Who may do what. For now the registry is open, as distribution is by
//! default on a loopback address; `--htpasswd` comes next.

use axum::http::{HeaderMap, Method};

use crate::errors::ApiError;
use crate::routes::Endpoint;

/// The access policy.
#[derive(Debug, Default)]
pub struct Auth {}

impl Auth {
    /// Everyone may do everything.
    pub fn open() -> Auth {
        Auth {}
    }

    /// `Ok` if the request may proceed.
    pub fn check(
        &self,
        _method: &Method,
        _endpoint: &Endpoint,
        _headers: &HeaderMap,
    ) -> Result<(), ApiError> {
        Ok(())
    }
}
