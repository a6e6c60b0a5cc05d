//! JWT verification against the configured keys and algorithms only, and
//! HS256 minting for local development.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};

use super::keys::{self, KeyError};
use crate::config::TokenConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One verification key with the algorithm it may verify.
struct VerifyKey {
    kid: Option<String>,
    key: DecodingKey,
    validation: Validation,
}

/// The server's token keys: verifies every token it is shown, and mints
/// HS256 tokens for development (`reportfiles token`) and tests.
pub struct Tokens {
    keys: Vec<VerifyKey>,
    hs256_secret: Option<SecretBox<[u8]>>,
    issuer: String,
    audience: String,
}

impl Tokens {
    /// Reads the key material `cfg` names and prepares the verifiers.
    pub fn load(cfg: &TokenConfig) -> Result<Self, KeyError> {
        let material = keys::load(cfg)?;
        let validation_for = |alg: Algorithm| {
            let mut v = Validation::new(alg);
            v.algorithms = vec![alg];
            v.leeway = cfg.leeway_secs;
            v.validate_nbf = true;
            v.set_issuer(&[&cfg.issuer]);
            v.set_audience(&[&cfg.audience]);
            v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
            v
        };
        let allowed = |alg: Algorithm| cfg.algorithms.contains(&alg);
        let mut keys = Vec::new();
        if let (true, Some(secret)) = (allowed(Algorithm::HS256), &material.hs256_secret) {
            keys.push(VerifyKey {
                kid: None,
                key: DecodingKey::from_secret(secret.expose_secret())
                    .map_err(|_| KeyError::BadSecret)?,
                validation: validation_for(Algorithm::HS256),
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
            if allowed(alg) {
                keys.push(VerifyKey {
                    kid: None,
                    key,
                    validation: validation_for(alg),
                });
            }
        }
        if let Some(set) = &material.jwks {
            for jwk in &set.keys {
                let key =
                    DecodingKey::from_jwk(jwk).map_err(|e| KeyError::BadJwks(e.to_string()))?;
                let alg = match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    _ => continue,
                };
                if allowed(alg) {
                    keys.push(VerifyKey {
                        kid: jwk.common.key_id.clone(),
                        key,
                        validation: validation_for(alg),
                    });
                }
            }
        }
        let hs256_secret = material.hs256_secret.filter(|_| allowed(Algorithm::HS256));
        Ok(Tokens {
            keys,
            hs256_secret,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
        })
    }

    /// The claims of a valid token; `None` for anything else (bad signature,
    /// expired, not yet valid, wrong issuer or audience, unlisted algorithm).
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let header = decode_header(token).ok()?;
        self.keys
            .iter()
            .filter(|k| k.validation.algorithms.contains(&header.alg))
            .filter(|k| match (&k.kid, &header.kid) {
                (Some(mine), Some(theirs)) => mine == theirs,
                _ => true,
            })
            .find_map(|k| decode::<Claims>(token, &k.key, &k.validation).ok())
            .map(|data| data.claims)
            .filter(|c| !c.sub.trim().is_empty())
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
            aud: self.audience.clone(),
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
    use super::*;
    use crate::config::tests::config;

    #[test]
    fn a_minted_token_verifies_and_a_tampered_one_does_not() {
        let tokens = Tokens::load(&config(&[]).unwrap().tokens).unwrap();
        let token = tokens
            .mint_hs256("ana", Some("ana@example.gov"), None, 60)
            .unwrap();
        let claims = tokens.verify(&token).unwrap();
        assert_eq!(claims.sub, "ana");
        assert_eq!(claims.email.as_deref(), Some("ana@example.gov"));
        let mut tampered = token.clone();
        tampered.pop();
        assert!(tokens.verify(&tampered).is_none());
    }

    #[test]
    fn without_hs256_nothing_is_minted() {
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
}
