//! Authentication: who is calling. Loads the verification keys, verifies
//! JWTs, and finds the bearer token or session cookie of a request. Turning
//! a verified subject into a user, and what that user may do, is `access`'s
//! concern.

mod cookies;
mod keys;
mod tokens;

pub use cookies::{CredentialSource, clear_session_cookie, session_cookie, token_from_headers};
pub use keys::KeyError;
pub use tokens::{Claims, Tokens, now_secs};
