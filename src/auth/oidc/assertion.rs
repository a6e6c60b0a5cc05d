//! `private_key_jwt` client authentication (OpenID Connect Core §9, RFC
//! 7523): the server proves who it is at the token endpoint with a short
//! JWT signed by its private key, whose public half is registered with the
//! provider. It is how Login.gov authenticates its clients. openidconnect
//! sends the parameters; this signs the assertion.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::Serialize;

use crate::auth::now_secs;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is good for: one token request.
const LIFETIME_SECS: u64 = 60;

pub struct ClientKey {
    pub key: EncodingKey,
    pub alg: Algorithm,
    /// The `kid` of the registered public key, when the provider wants it.
    pub kid: Option<String>,
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    iat: u64,
    exp: u64,
}

impl ClientKey {
    /// An assertion that `client_id` is calling `token_endpoint` (its `aud`,
    /// as Login.gov requires); `jti` is random, so none can be replayed.
    pub fn assertion(&self, client_id: &str, token_endpoint: &str) -> String {
        let now = now_secs();
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        let claims = AssertionClaims {
            iss: client_id,
            sub: client_id,
            aud: token_endpoint,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            iat: now,
            exp: now + LIFETIME_SECS,
        };
        encode(&header, &claims, &self.key).expect("the key was checked when it was loaded")
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation, decode};

    use super::*;

    #[test]
    fn the_assertion_names_the_client_and_the_token_endpoint() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let pem = std::fs::read(format!("{dir}/tests/fixtures/rsa_private.pem")).unwrap();
        let public = std::fs::read(format!("{dir}/tests/fixtures/rsa_public.pem")).unwrap();
        let key = ClientKey {
            key: EncodingKey::from_rsa_pem(&pem).unwrap(),
            alg: Algorithm::RS256,
            kid: Some("client-key-1".into()),
        };
        let a = key.assertion("rf-client", "https://idp.example.gov/token");
        let b = key.assertion("rf-client", "https://idp.example.gov/token");
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&["https://idp.example.gov/token"]);
        v.set_issuer(&["rf-client"]);
        let claims =
            decode::<serde_json::Value>(&a, &DecodingKey::from_rsa_pem(&public).unwrap(), &v)
                .unwrap()
                .claims;
        assert_eq!(claims["sub"], "rf-client");
        assert!(claims["exp"].as_u64().unwrap() <= now_secs() + LIFETIME_SECS);
        assert_eq!(
            jsonwebtoken::decode_header(&a).unwrap().kid.as_deref(),
            Some("client-key-1")
        );
        let jti = |t: &str| {
            decode::<serde_json::Value>(t, &DecodingKey::from_rsa_pem(&public).unwrap(), &v)
                .unwrap()
                .claims["jti"]
                .clone()
        };
        assert_ne!(jti(&a), jti(&b), "every assertion is new");
    }
}
