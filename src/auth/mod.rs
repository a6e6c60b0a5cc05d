//! Authentication: who is calling. Loads and fetches the verification keys,
//! verifies bearer JWTs, signs and reads sessions, runs the OpenID Connect
//! sign-in, and finds the bearer token or session cookie of a request.
//! Turning a verified subject into a user, and what that user may do, is
//! `access`'s concern.
//!
//! | module | concern |
//! | --- | --- |
//! | `tokens` | bearer JWTs: configured keys and fetched key sets, algorithms from configuration |
//! | `jwks` | key sets fetched from a URL: cached, refreshed on a TTL and on an unknown `kid` |
//! | `sessions` | the session token in the cookie, signed by this server |
//! | `oidc` | sign-in through OpenID Connect providers |
//! | `cookies` | where a request's credentials are; the session cookie |
//! | `keys` | key material read at start |

mod cookies;
pub mod jwks;
mod keys;
pub mod oidc;
mod sessions;
mod tokens;

pub use cookies::{CredentialSource, clear_session_cookie, session_cookie, token_from_headers};
pub use keys::KeyError;
pub use sessions::{Session, Sessions};
pub use tokens::{Claims, Rejection, Tokens, now_secs};
