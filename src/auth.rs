//! Authentication: who is calling. Verifies JWTs, finds the bearer token or
//! session cookie in a request, and turns a verified subject into a user.
//! What that user may do is `access`'s concern.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue, header};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
    jwk::JwkSet,
};
use serde::{Deserialize, Serialize};

use crate::config::{Config, JwtConfig};

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

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("JWT_HS256_SECRET cannot be used as a key")]
    BadSecret,
    #[error("JWT_PUBLIC_KEY_FILE is neither an RSA nor an EC public key in PEM form")]
    BadPem,
    #[error("JWT_JWKS_FILE is not a valid JWKS document: {0}")]
    BadJwks(String),
}

/// One verification key with the algorithms it may verify.
struct VerifyKey {
    kid: Option<String>,
    key: DecodingKey,
    validation: Validation,
}

/// Verifies tokens against the configured keys and algorithms only.
pub struct JwtVerifier {
    keys: Vec<VerifyKey>,
}

impl JwtVerifier {
    pub fn new(cfg: &JwtConfig) -> Result<Self, KeyError> {
        let validation_for = |algs: Vec<Algorithm>| {
            let mut v = Validation::new(algs[0]);
            v.algorithms = algs;
            v.leeway = cfg.leeway_secs;
            v.validate_nbf = true;
            v.set_issuer(&[&cfg.issuer]);
            v.set_audience(&[&cfg.audience]);
            v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
            v
        };
        let allowed = |alg: Algorithm| cfg.algorithms.contains(&alg);
        let mut keys = Vec::new();
        if let (true, Some(secret)) = (allowed(Algorithm::HS256), &cfg.hs256_secret) {
            keys.push(VerifyKey {
                kid: None,
                key: DecodingKey::from_secret(secret).map_err(|_| KeyError::BadSecret)?,
                validation: validation_for(vec![Algorithm::HS256]),
            });
        }
        if let Some(pem) = &cfg.public_key_pem {
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
                    validation: validation_for(vec![alg]),
                });
            }
        }
        if let Some(json) = &cfg.jwks_json {
            let set: JwkSet =
                serde_json::from_str(json).map_err(|e| KeyError::BadJwks(e.to_string()))?;
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
                        validation: validation_for(vec![alg]),
                    });
                }
            }
        }
        Ok(JwtVerifier { keys })
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
}

/// Mints an HS256 token for local development (`reportfiles token`) and tests.
pub fn mint_hs256(
    cfg: &JwtConfig,
    sub: &str,
    email: Option<&str>,
    name: Option<&str>,
    ttl_secs: u64,
) -> Option<String> {
    let secret = cfg.hs256_secret.as_ref()?;
    let claims = Claims {
        sub: sub.to_string(),
        iss: cfg.issuer.clone(),
        aud: cfg.audience.clone(),
        exp: now_secs() + ttl_secs,
        nbf: None,
        email: email.map(str::to_string),
        name: name.map(str::to_string),
    };
    let key = EncodingKey::from_secret(secret).ok()?;
    encode(&Header::new(Algorithm::HS256), &claims, &key).ok()
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where a request's credentials came from: cookie-borne requests need CSRF
/// protection, bearer-borne ones cannot be forged by another site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    Bearer,
    Cookie,
}

/// The raw token of a request: the `Authorization: Bearer` header wins over
/// the session cookie.
pub fn token_from_headers<'a>(
    headers: &'a HeaderMap,
    cookie_name: &str,
) -> Option<(&'a str, CredentialSource)> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| (token.trim(), CredentialSource::Bearer));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == cookie_name)
        .map(|(_, value)| (value.trim_matches('"'), CredentialSource::Cookie))
}

/// `Set-Cookie` for a new session: HttpOnly so scripts never see the token,
/// SameSite=Lax so other sites' sub-requests do not carry it.
pub fn session_cookie(config: &Config, token: &str, max_age_secs: u64) -> HeaderValue {
    let secure = if config.cookie_secure { "; Secure" } else { "" };
    let value = format!(
        "{}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_secs}{secure}",
        config.cookie_name
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn clear_session_cookie(config: &Config) -> HeaderValue {
    session_cookie(config, "", 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_header_wins_over_cookie() {
        let h = headers(&[
            (header::AUTHORIZATION, "Bearer abc"),
            (header::COOKIE, "s=def"),
        ]);
        assert_eq!(
            token_from_headers(&h, "s"),
            Some(("abc", CredentialSource::Bearer))
        );
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[(header::COOKIE, "a=1; s=tok; b=2")]);
        assert_eq!(
            token_from_headers(&h, "s"),
            Some(("tok", CredentialSource::Cookie))
        );
        let h = headers(&[(header::COOKIE, "ss=tok")]);
        assert_eq!(token_from_headers(&h, "s"), None);
    }

    #[test]
    fn other_authorization_schemes_are_not_tokens() {
        let h = headers(&[(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")]);
        assert_eq!(token_from_headers(&h, "s"), None);
    }
}
