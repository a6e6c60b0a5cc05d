//! Sign-in through OpenID Connect providers, with this server as the
//! confidential client (authorization code flow, PKCE S256, `state`,
//! `nonce`), so that no token passes through browser JavaScript. The
//! routes are in `http::signin`; the protocol is openidconnect's.
//!
//! | module | concern |
//! | --- | --- |
//! | `provider` | one provider: discovery, keys, the two halves of the flow, its sign-out URL |
//! | `flow` | the encrypted cookie that carries a flow from `/auth/login` to `/auth/callback` |
//! | `return_to` | where the browser may be sent back to |
//! | `assertion` | `private_key_jwt` client assertions |
//! | `http` | the HTTP client for providers |

mod assertion;
pub mod flow;
mod http;
mod provider;
pub mod return_to;

use std::time::Duration;

pub use flow::{Flow, NoFlow};
pub use http::ProviderHttp;
pub use provider::{Identity, Provider};
pub use return_to::BadReturnTo;

use super::KeyError;
use crate::config::OidcConfig;

/// Why a sign-in could not go on. Each says what happened in words for the
/// person in front of the browser; none holds a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    #[error("the sign-in service `{provider}` is not answering")]
    Unavailable { provider: String, reason: String },
    #[error("the sign-in service refused to complete the sign-in ({error})")]
    Refused { error: String },
    #[error(
        "the sign-in service's answer could not be trusted: its ID token was refused because {0}"
    )]
    BadIdToken(String),
    #[error("the sign-in service's answer made no sense: {0}")]
    BadResponse(String),
}

impl SignInError {
    pub(crate) fn unavailable(provider: &str, reason: String) -> Self {
        SignInError::Unavailable {
            provider: provider.to_string(),
            reason,
        }
    }
}

/// The configured providers, in order.
#[derive(Default)]
pub struct Providers {
    providers: Vec<Provider>,
}

impl Providers {
    /// Reads each provider's client key; nothing is fetched yet.
    pub fn new(cfg: &OidcConfig, jwks_ttl: Duration, leeway: Duration) -> Result<Self, KeyError> {
        let http = ProviderHttp::new();
        let providers = cfg
            .providers
            .iter()
            .map(|p| Provider::new(p.clone(), http.clone(), jwks_ttl, leeway))
            .collect::<Result<_, _>>()?;
        Ok(Providers { providers })
    }

    /// Discovers every provider and fetches its keys (at once, side by
    /// side); one that does not answer is retried in the background.
    pub async fn start(&self) {
        futures_util::future::join_all(self.providers.iter().map(Provider::start)).await;
    }

    /// The provider `name`, or the first when `name` is `None`.
    pub fn get(&self, name: Option<&str>) -> Option<&Provider> {
        match name {
            None => self.providers.first(),
            Some(name) => self.providers.iter().find(|p| p.name() == name),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Provider> {
        self.providers.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }
}
