//! Bearer JWT verification, with the algorithms of configuration only,
//! against the configured keys (the HS256 secret, key files: issuer
//! `JWT_ISSUER`) and the fetched key sets of trusted issuers (`JWT_JWKS_URL`,
//! each OpenID provider's JWKS); and HS256 minting for development.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
    errors::ErrorKind,
};
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};

use super::{
    jwks::{RemoteKeys, VerifyKey},
    keys::{self, KeyError},
};
use crate::config::TokenConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    /// A string or an array in the token (RFC 7519 §4.1.3).
    #[serde(with = "one_or_many")]
    pub aud: Vec<String>,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `aud`: one string, or an array of them.
mod one_or_many {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(aud: &[String], s: S) -> Result<S::Ok, S::Error> {
        match aud {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Aud {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Aud::deserialize(d)? {
            Aud::One(one) => vec![one],
            Aud::Many(many) => many,
        })
    }
}

/// Why a token was refused: logged, and safe to tell the client. Never
/// holds the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token is signed with {0:?}, which this server does not accept")]
    Algorithm(Algorithm),
    #[error("the token is signed by an unknown key (kid `{0}`)")]
    UnknownKey(String),
    #[error("no key of this server verifies the token's algorithm")]
    NoKey,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token was issued by another issuer (iss)")]
    Issuer,
    #[error("the token is meant for another audience (aud)")]
    Audience,
    #[error("the token has no `{0}` claim")]
    MissingClaim(String),
    #[error("the token has an empty subject (sub)")]
    EmptySubject,
    #[error("the token's claims are invalid")]
    Invalid,
}

impl Rejection {
    fn from_jwt(e: &jsonwebtoken::errors::Error) -> Self {
        match e.kind() {
            ErrorKind::InvalidSignature => Rejection::Signature,
            ErrorKind::ExpiredSignature => Rejection::Expired,
            ErrorKind::ImmatureSignature => Rejection::NotYetValid,
            ErrorKind::InvalidIssuer => Rejection::Issuer,
            ErrorKind::InvalidAudience => Rejection::Audience,
            ErrorKind::MissingRequiredClaim(c) => Rejection::MissingClaim(c.clone()),
            ErrorKind::InvalidAlgorithm => Rejection::Signature,
            ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
                Rejection::Malformed
            }
            _ => Rejection::Invalid,
        }
    }

    /// Of two failures with different keys, the one that says more: a
    /// claim error means the signature matched.
    fn more_telling(self, other: Rejection) -> Rejection {
        if self == Rejection::Signature {
            other
        } else {
            self
        }
    }
}

/// An issuer whose keys are fetched.
struct Trusted {
    issuer: String,
    keys: Arc<RemoteKeys>,
}

/// The server's token keys: verifies every bearer token it is shown, and
/// mints HS256 tokens for development (`reportfiles token`) and tests.
pub struct Tokens {
    algorithms: Vec<Algorithm>,
    leeway_secs: u64,
    audience: String,
    /// The issuer of tokens signed with `configured` keys.
    issuer: String,
    configured: Vec<VerifyKey>,
    trusted: Vec<Trusted>,
    hs256_secret: Option<SecretBox<[u8]>>,
}

impl Tokens {
    /// Reads the key material `cfg` names and prepares the verifiers.
    /// Fetched key sets are added with [`Tokens::trust`].
    pub fn load(cfg: &TokenConfig) -> Result<Self, KeyError> {
        let material = keys::load(cfg)?;
        let allowed = |alg: Algorithm| cfg.algorithms.contains(&alg);
        let mut configured = Vec::new();
        if let (true, Some(secret)) = (allowed(Algorithm::HS256), &material.hs256_secret) {
            configured.push(VerifyKey {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.expose_secret())
                    .map_err(|_| KeyError::BadSecret)?,
            });
        }
        if let Some(pem) = &material.public_key_pem {
            let (key, alg) = if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
                (k, Algorithm::RS256)
            } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
                (k, Algorithm::ES256)
            } else {
                return Err(KeyError::BadPem);
            };
            configured.push(VerifyKey {
                kid: None,
                alg,
                key,
            });
        }
        if let Some(set) = &material.jwks {
            for jwk in &set.keys {
                DecodingKey::from_jwk(jwk).map_err(|e| KeyError::BadJwks(e.to_string()))?;
            }
            configured.extend(super::jwks::verify_keys(&set.keys));
        }
        configured.retain(|k| allowed(k.alg));
        let hs256_secret = material.hs256_secret.filter(|_| allowed(Algorithm::HS256));
        Ok(Tokens {
            algorithms: cfg.algorithms.clone(),
            leeway_secs: cfg.leeway_secs,
            audience: cfg.audience.clone(),
            issuer: cfg.issuer.clone(),
            configured,
            trusted: Vec::new(),
            hs256_secret,
        })
    }

    /// Accepts tokens of `issuer` signed with the keys of `keys`.
    pub fn trust(&mut self, issuer: impl Into<String>, keys: Arc<RemoteKeys>) {
        self.trusted.push(Trusted {
            issuer: issuer.into(),
            keys,
        });
    }

    /// The claims of a valid token, or why it is not: bad signature,
    /// expired, not yet valid, wrong issuer or audience, an algorithm not
    /// configured. A key id no key set knows makes the fetched sets fetch
    /// again (each at most once per 30 s) before the token is refused.
    pub async fn verify(&self, token: &str) -> Result<Claims, Rejection> {
        let header = decode_header(token).map_err(|_| Rejection::Malformed)?;
        if !self.algorithms.contains(&header.alg) {
            return Err(Rejection::Algorithm(header.alg));
        }
        match self.verify_with_keys_now(token, header.alg, header.kid.as_deref()) {
            Err(Rejection::UnknownKey(kid)) if !self.trusted.is_empty() => {
                let mut fresh = false;
                for trusted in &self.trusted {
                    fresh |= trusted.keys.refresh_for_unknown_kid().await;
                }
                if !fresh {
                    return Err(Rejection::UnknownKey(kid));
                }
                self.verify_with_keys_now(token, header.alg, Some(&kid))
            }
            result => result,
        }
    }

    fn verify_with_keys_now(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Claims, Rejection> {
        let snapshots: Vec<_> = self
            .trusted
            .iter()
            .map(|t| (t.keys.snapshot(), t.issuer.as_str()))
            .collect();
        let candidates = self
            .configured
            .iter()
            .map(|k| (k, self.issuer.as_str()))
            .chain(
                snapshots
                    .iter()
                    .flat_map(|(s, issuer)| s.keys.iter().map(move |k| (k, *issuer))),
            )
            .filter(|(k, _)| k.alg == alg)
            .filter(|(k, _)| match (k.kid.as_deref(), kid) {
                (Some(mine), Some(theirs)) => mine == theirs,
                _ => true,
            });
        let mut refused: Option<Rejection> = None;
        for (key, issuer) in candidates {
            match decode::<Claims>(token, &key.key, &self.validation(alg, issuer)) {
                Ok(data) if data.claims.sub.trim().is_empty() => {
                    return Err(Rejection::EmptySubject);
                }
                Ok(data) => return Ok(data.claims),
                Err(e) => {
                    let why = Rejection::from_jwt(&e);
                    refused = Some(match refused {
                        None => why,
                        Some(before) => before.more_telling(why),
                    });
                }
            }
        }
        Err(refused.unwrap_or_else(|| match kid {
            Some(kid) => Rejection::UnknownKey(kid.to_string()),
            None => Rejection::NoKey,
        }))
    }

    fn validation(&self, alg: Algorithm, issuer: &str) -> Validation {
        let mut v = Validation::new(alg);
        v.algorithms = vec![alg];
        v.leeway = self.leeway_secs;
        v.validate_nbf = true;
        v.set_issuer(&[issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        v
    }

    /// An HS256 token for `sub`, valid for `ttl_secs`; `None` when HS256 is
    /// not enabled.
    pub fn mint_hs256(
        &self,
        sub: &str,
        email: Option<&str>,
        name: Option<&str>,
        ttl_secs: u64,
    ) -> Option<String> {
        let secret = self.hs256_secret.as_ref()?;
        let claims = Claims {
            sub: sub.to_string(),
            iss: self.issuer.clone(),
            aud: vec![self.audience.clone()],
            exp: now_secs() + ttl_secs,
            nbf: None,
            email: email.map(str::to_string),
            name: name.map(str::to_string),
        };
        let key = EncodingKey::from_secret(secret.expose_secret()).ok()?;
        encode(&Header::new(Algorithm::HS256), &claims, &key).ok()
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{auth::jwks::tests::jwks, config::tests::config};

    fn hs256_tokens() -> Tokens {
        Tokens::load(&config(&[]).unwrap().tokens).unwrap()
    }

    fn rs256(claims: &serde_json::Value, kid: &str) -> String {
        let pem = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/rsa_private.pem"
        ))
        .unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        encode(&header, claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
    }

    fn claims(iss: &str, aud: serde_json::Value) -> serde_json::Value {
        serde_json::json!({ "sub": "ana", "iss": iss, "aud": aud, "exp": now_secs() + 60 })
    }

    #[tokio::test]
    async fn a_minted_token_verifies_and_a_tampered_one_does_not() {
        let tokens = hs256_tokens();
        let token = tokens
            .mint_hs256("ana", Some("ana@example.gov"), None, 60)
            .unwrap();
        let claims = tokens.verify(&token).await.unwrap();
        assert_eq!(claims.sub, "ana");
        assert_eq!(claims.email.as_deref(), Some("ana@example.gov"));
        let mut tampered = token.clone();
        tampered.pop();
        assert!(tokens.verify(&tampered).await.is_err());
        let mut forged = token.clone();
        let sig = forged.rfind('.').unwrap() + 1;
        let other = if &token[sig..sig + 1] == "A" {
            "B"
        } else {
            "A"
        };
        forged.replace_range(sig..sig + 1, other);
        assert_eq!(
            tokens.verify(&forged).await.unwrap_err(),
            Rejection::Signature
        );
    }

    #[tokio::test]
    async fn without_hs256_nothing_is_minted() {
        let cfg = config(&[
            ("JWT_ALGORITHMS", "RS256"),
            (
                "JWT_PUBLIC_KEY_FILE",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rsa_public.pem"),
            ),
        ])
        .unwrap();
        let tokens = Tokens::load(&cfg.tokens).unwrap();
        assert!(tokens.mint_hs256("ana", None, None, 60).is_none());
    }

    #[test]
    fn the_audience_is_a_string_or_an_array() {
        let one: Claims = serde_json::from_value(claims("i", "a".into())).unwrap();
        assert_eq!(one.aud, ["a"]);
        let many: Claims =
            serde_json::from_value(claims("i", serde_json::json!(["a", "b"]))).unwrap();
        assert_eq!(many.aud, ["a", "b"]);
        assert_eq!(serde_json::to_value(&one).unwrap()["aud"], "a");
        assert_eq!(
            serde_json::to_value(&many).unwrap()["aud"],
            serde_json::json!(["a", "b"])
        );
    }

    /// RS256 tokens of `https://idp.example.gov`, whose keys are fetched.
    fn trusting(document: Vec<u8>) -> Tokens {
        let cfg = config(&[
            ("JWT_ALGORITHMS", "RS256"),
            ("JWT_JWKS_URL", "https://idp.example.gov/jwks"),
        ])
        .unwrap();
        let mut tokens = Tokens::load(&cfg.tokens).unwrap();
        let keys = RemoteKeys::new(
            "test",
            Duration::from_secs(300),
            Box::new(|| Box::pin(async { Err("offline".to_string()) })),
        );
        assert!(keys.accept(document));
        tokens.trust("https://idp.example.gov", keys);
        tokens
    }

    #[tokio::test]
    async fn fetched_keys_verify_their_issuers_tokens_with_any_audience_form() {
        let tokens = trusting(jwks(&["k1"]));
        let iss = "https://idp.example.gov";
        for aud in [
            serde_json::json!("reportfiles"),
            serde_json::json!(["other", "reportfiles"]),
        ] {
            let ok = tokens.verify(&rs256(&claims(iss, aud.clone()), "k1")).await;
            assert_eq!(ok.unwrap().sub, "ana", "{aud}");
        }
        let cases = [
            (
                rs256(&claims(iss, "other".into()), "k1"),
                Rejection::Audience,
            ),
            (
                rs256(&claims(iss, serde_json::json!(["x", "y"])), "k1"),
                Rejection::Audience,
            ),
            (
                rs256(&claims("https://evil.example", "reportfiles".into()), "k1"),
                Rejection::Issuer,
            ),
            // Its issuer's keys only: the configured issuer has none here.
            (
                rs256(&claims("reportfiles-dev", "reportfiles".into()), "k1"),
                Rejection::Issuer,
            ),
            (
                rs256(&claims(iss, "reportfiles".into()), "k2"),
                Rejection::UnknownKey("k2".into()),
            ),
        ];
        for (token, why) in cases {
            assert_eq!(tokens.verify(&token).await.unwrap_err(), why);
        }
    }

    #[tokio::test]
    async fn an_algorithm_outside_the_configuration_is_refused_first() {
        let tokens = trusting(jwks(&["k1"]));
        let hs = hs256_tokens().mint_hs256("ana", None, None, 60).unwrap();
        assert_eq!(
            tokens.verify(&hs).await.unwrap_err(),
            Rejection::Algorithm(Algorithm::HS256)
        );
        assert_eq!(
            tokens.verify("nope").await.unwrap_err(),
            Rejection::Malformed
        );
    }
}
