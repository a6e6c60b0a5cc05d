//! Sessions: what the HttpOnly session cookie carries, and the key of the
//! sign-in flow cookie.
//!
//! The cookie holds a session token this server signs itself (HS256, key
//! derived from `SESSION_SECRET`): the subject, email and name it was made
//! for, which provider signed them in, and an expiry of the server's own
//! (`SESSION_TTL_SECS`), whatever the provider's tokens said. Any instance
//! with the same secret reads it; no session store is needed. Being signed
//! by this server, with an issuer and audience of its own, a session token
//! is never taken for a bearer token, nor a provider's token for a session.

use cookie::Key;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::{
    keys::{self, KeyError},
    tokens::{Claims, Rejection, now_secs},
};
use crate::config::SessionConfig;

/// `iss` and `aud` of session tokens: this server, for itself.
const SESSION_ISSUER: &str = "reportfiles-session";

/// What a session token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The OpenID provider that signed the user in; `None` for `login(token)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
    pub iat: u64,
    pub exp: u64,
}

impl Session {
    /// The session's user, as the gate knows claims.
    pub fn claims(&self) -> Claims {
        Claims {
            sub: self.sub.clone(),
            iss: SESSION_ISSUER.into(),
            aud: vec![SESSION_ISSUER.into()],
            exp: self.exp,
            nbf: None,
            email: self.email.clone(),
            name: self.name.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    iss: String,
    aud: String,
    #[serde(flatten)]
    session: Session,
}

pub struct Sessions {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
    flow_key: Key,
}

impl Sessions {
    /// Derives the keys from the configured (or development) secret.
    pub fn load(cfg: &SessionConfig) -> Result<Self, KeyError> {
        let secret = keys::session_secret(&cfg.secret)?;
        // One master secret, two keys (HKDF-SHA256 in `cookie`): the signing
        // half signs session tokens, the encryption half the flow cookie.
        let master = Key::derive_from(secret.expose_secret());
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = 0;
        validation.set_issuer(&[SESSION_ISSUER]);
        validation.set_audience(&[SESSION_ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        Ok(Sessions {
            encoding: EncodingKey::from_secret(master.signing())
                .map_err(|_| KeyError::BadSessionSecret)?,
            decoding: DecodingKey::from_secret(master.signing())
                .map_err(|_| KeyError::BadSessionSecret)?,
            validation,
            ttl_secs: cfg.ttl.as_secs(),
            flow_key: master,
        })
    }

    /// A session for `claims`' subject, signed in through `idp`: the token
    /// and its lifetime in seconds. It lasts `SESSION_TTL_SECS`, or less when
    /// `not_after` (a Unix time) comes first.
    pub fn issue(
        &self,
        claims: &Claims,
        idp: Option<&str>,
        not_after: Option<u64>,
    ) -> (String, u64) {
        let now = now_secs();
        let exp = not_after.map_or(now + self.ttl_secs, |t| t.min(now + self.ttl_secs));
        let wire = Wire {
            iss: SESSION_ISSUER.into(),
            aud: SESSION_ISSUER.into(),
            session: Session {
                sub: claims.sub.clone(),
                email: claims.email.clone(),
                name: claims.name.clone(),
                idp: idp.map(str::to_string),
                iat: now,
                exp,
            },
        };
        let token = encode(&Header::new(Algorithm::HS256), &wire, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail");
        (token, exp.saturating_sub(now))
    }

    /// The session a cookie holds, or why it does not hold one.
    pub fn verify(&self, token: &str) -> Result<Session, Rejection> {
        let data = decode::<Wire>(token, &self.decoding, &self.validation).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => Rejection::Expired,
            _ => Rejection::Signature,
        })?;
        if data.claims.session.sub.trim().is_empty() {
            return Err(Rejection::EmptySubject);
        }
        Ok(data.claims.session)
    }

    /// Encrypts and authenticates the sign-in flow cookie (`cookie`'s
    /// private jar: AES-256-GCM, the cookie's name bound in).
    pub fn flow_key(&self) -> &Key {
        &self.flow_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    fn sessions(secret: &str) -> Sessions {
        Sessions::load(&config(&[("SESSION_SECRET", secret)]).unwrap().sessions).unwrap()
    }

    fn claims() -> Claims {
        Claims {
            sub: "ana".into(),
            iss: "https://idp.example.gov".into(),
            aud: vec!["rf".into()],
            exp: now_secs() + 60,
            nbf: None,
            email: Some("ana@example.gov".into()),
            name: Some("Ana".into()),
        }
    }

    #[test]
    fn a_session_outlives_the_provider_token_but_not_its_own_ttl() {
        let s = sessions(&"a".repeat(32));
        let (token, max_age) = s.issue(&claims(), Some("logingov"), None);
        assert_eq!(
            max_age,
            8 * 3600,
            "the server's lifetime, not the token's 60 s"
        );
        let session = s.verify(&token).unwrap();
        assert_eq!(session.sub, "ana");
        assert_eq!(session.idp.as_deref(), Some("logingov"));
        assert_eq!(session.email.as_deref(), Some("ana@example.gov"));
        let (_, max_age) = s.issue(&claims(), None, Some(now_secs() + 90));
        assert!((89..=90).contains(&max_age), "{max_age}");
    }

    #[test]
    fn instances_with_the_same_secret_read_each_others_sessions() {
        let (token, _) = sessions(&"a".repeat(32)).issue(&claims(), None, None);
        assert!(sessions(&"a".repeat(32)).verify(&token).is_ok());
        assert_eq!(
            sessions(&"b".repeat(32)).verify(&token).unwrap_err(),
            Rejection::Signature
        );
    }

    #[test]
    fn expired_or_foreign_tokens_are_no_session() {
        let s = sessions(&"a".repeat(32));
        let (token, _) = s.issue(&claims(), None, Some(now_secs() - 1));
        assert_eq!(s.verify(&token).unwrap_err(), Rejection::Expired);
        // A development bearer token is not a session, even signed with
        // the same bytes.
        let tokens = crate::auth::Tokens::load(&config(&[]).unwrap().tokens).unwrap();
        let bearer = tokens.mint_hs256("ana", None, None, 60).unwrap();
        assert!(s.verify(&bearer).is_err());
    }
}
