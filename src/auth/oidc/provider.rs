//! One OpenID provider: its discovered metadata, its signing keys, and the
//! two halves of the authorization code flow (openidconnect does the
//! protocol: the authorization URL with PKCE S256, `state` and `nonce`, the
//! code exchange, ID token validation, userinfo).

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, LogoutRequest, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl,
    ProviderMetadataWithLogout, RedirectUrl, RequestTokenError, Scope, TokenResponse,
    core::{
        CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet,
        CoreJwsSigningAlgorithm, CoreUserInfoClaims,
    },
    url::Url,
};
use secrecy::ExposeSecret;
use tokio::time::Instant;

use super::{
    SignInError,
    assertion::{ASSERTION_TYPE, ClientKey},
    flow::Flow,
    http::ProviderHttp,
};
use crate::{
    auth::{
        KeyError,
        jwks::{KeySnapshot, RemoteKeys},
        keys, now_secs,
    },
    config::{ClientAuth, ProviderConfig},
};

/// `/auth/login` asks the provider again when what it knows is older than
/// this: a provider that went down answers 503 at once rather than leaving
/// the browser at an unreachable page; a burst of sign-ins shares one look.
const CHECK_AFTER: Duration = Duration::from_secs(2);

/// An ID token issued longer ago than this (or later than now, past the
/// leeway) is refused: it was made by the token endpoint just now.
const MAX_ID_TOKEN_AGE: Duration = Duration::from_secs(600);

type Metadata = ProviderMetadataWithLogout;
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

pub struct Provider {
    config: ProviderConfig,
    client_key: Option<ClientKey>,
    discovery: Arc<Discovery>,
    keys: Arc<RemoteKeys>,
    leeway: Duration,
}

/// The discovery document, as last fetched.
struct Discovery {
    issuer: IssuerUrl,
    http: ProviderHttp,
    current: RwLock<Option<(Arc<Metadata>, Instant)>>,
    fetching: tokio::sync::Mutex<()>,
}

impl Discovery {
    fn cached(&self) -> Option<(Arc<Metadata>, Instant)> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Fetches the discovery document and the JWKS it names (openidconnect
    /// checks that the document's issuer is the configured one).
    async fn discover(&self) -> Result<Arc<Metadata>, String> {
        let metadata = Metadata::discover_async(self.issuer.clone(), &self.http.client())
            .await
            .map_err(|e| describe(&e))?;
        let metadata = Arc::new(metadata);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) =
            Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    /// Metadata fetched less than `max_age` ago, fetching it if need be
    /// (one fetch at a time); whether it was fetched by this call.
    async fn fresh(&self, max_age: Duration) -> Result<(Arc<Metadata>, bool), String> {
        let young = |d: &Option<(Arc<Metadata>, Instant)>| match d {
            Some((m, at)) if at.elapsed() < max_age => Some(m.clone()),
            _ => None,
        };
        if let Some(m) = young(&self.cached()) {
            return Ok((m, false));
        }
        let _one = self.fetching.lock().await;
        if let Some(m) = young(&self.cached()) {
            return Ok((m, false));
        }
        self.discover().await.map(|m| (m, true))
    }
}

impl Provider {
    /// Prepares a provider: reads the client key. Nothing is fetched yet.
    pub(super) fn new(
        config: ProviderConfig,
        http: ProviderHttp,
        jwks_ttl: Duration,
        leeway: Duration,
    ) -> Result<Self, KeyError> {
        let client_key = match &config.client_auth {
            ClientAuth::PrivateKeyJwt { key_file, key_id } => {
                let var = if config.name == crate::config::DEFAULT_PROVIDER {
                    "OIDC_CLIENT_PRIVATE_KEY_FILE".to_string()
                } else {
                    format!(
                        "OIDC_{}_CLIENT_PRIVATE_KEY_FILE",
                        config.name.to_ascii_uppercase().replace('-', "_")
                    )
                };
                let (key, alg) = keys::client_signing_key(&var, key_file)?;
                Some(ClientKey {
                    key,
                    alg,
                    kid: key_id.clone(),
                })
            }
            ClientAuth::ClientSecretBasic(_) => None,
        };
        let discovery = Arc::new(Discovery {
            issuer: IssuerUrl::new(config.issuer.clone()).expect("checked in config"),
            http,
            current: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
        });
        // The keys come from the `jwks_uri` of the last discovery; before
        // any discovery succeeded, from a discovery.
        let source = discovery.clone();
        let keys = RemoteKeys::new(
            format!("OpenID provider `{}` ({})", config.name, config.issuer),
            jwks_ttl,
            Box::new(move || {
                let d = source.clone();
                Box::pin(async move {
                    match d.cached() {
                        Some((metadata, _)) => d.http.get(metadata.jwks_uri().url().as_str()).await,
                        None => {
                            let metadata = d.discover().await?;
                            serde_json::to_vec(metadata.jwks()).map_err(|e| e.to_string())
                        }
                    }
                })
            }),
        );
        Ok(Provider {
            config,
            client_key,
            discovery,
            keys,
            leeway,
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// The provider's signing keys (ID tokens, and its access tokens for
    /// API clients).
    pub fn keys(&self) -> &Arc<RemoteKeys> {
        &self.keys
    }

    /// Discovers the provider and fetches its keys, then keeps them fresh.
    /// A provider that does not answer is logged: the server starts all the
    /// same, and `/auth/login` answers 503 until it does.
    pub(super) async fn start(&self) {
        self.keys.start().await;
        if self.discovery.cached().is_none() {
            tracing::warn!(provider = %self.config.name, issuer = %self.config.issuer, "the OpenID provider did not answer discovery; sign-in through it answers 503 until it does");
        }
    }

    /// Metadata fetched less than `max_age` ago; a fetch brings the keys
    /// along.
    async fn metadata(&self, max_age: Duration) -> Result<Arc<Metadata>, SignInError> {
        let (metadata, fetched) = self
            .discovery
            .fresh(max_age)
            .await
            .map_err(|reason| SignInError::unavailable(&self.config.name, reason))?;
        if fetched && let Ok(document) = serde_json::to_vec(metadata.jwks()) {
            self.keys.accept(document);
        }
        Ok(metadata)
    }

    fn client(&self, metadata: &Metadata) -> Client {
        let secret = match &self.config.client_auth {
            ClientAuth::ClientSecretBasic(s) => {
                Some(ClientSecret::new(s.expose_secret().to_string()))
            }
            ClientAuth::PrivateKeyJwt { .. } => None,
        };
        let auth_type = if secret.is_some() {
            AuthType::BasicAuth
        } else {
            // No secret: `client_id` goes in the body, beside the assertion.
            AuthType::RequestBody
        };
        CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            secret,
        )
        .set_redirect_uri(RedirectUrl::from_url(self.config.redirect_url.clone()))
        .set_auth_type(auth_type)
    }

    /// The first half: where to send the browser, and the flow to keep in
    /// its cookie until it comes back.
    pub async fn begin(&self, return_to: String) -> Result<(Url, Flow), SignInError> {
        let metadata = self.metadata(CHECK_AFTER).await?;
        let client = self.client(&metadata);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        // openidconnect asks for `openid` itself.
        for scope in self.config.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        for (name, value) in &self.config.auth_params {
            request = request.add_extra_param(name.as_str(), value.as_str());
        }
        let (url, state, nonce) = request.url();
        let flow = Flow::SignIn {
            provider: self.config.name.clone(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to,
            started: now_secs(),
        };
        Ok((url, flow))
    }

    /// The second half: exchanges `code` (authenticating this server),
    /// validates the ID token against the flow's `nonce`, and reads who
    /// signed in (from userinfo too, when the ID token lacks email or name,
    /// as Login.gov's does).
    pub async fn finish(
        &self,
        code: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<Identity, SignInError> {
        let metadata = match self.discovery.cached() {
            Some((m, _)) => m,
            None => self.metadata(Duration::ZERO).await?,
        };
        let client = self.client(&metadata);
        let mut request = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|_| SignInError::BadResponse("the provider names no token endpoint".into()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()));
        if let (Some(key), Some(token_url)) = (&self.client_key, metadata.token_endpoint()) {
            let assertion = key.assertion(&self.config.client_id, token_url.url().as_str());
            request = request
                .add_extra_param("client_assertion_type", ASSERTION_TYPE)
                .add_extra_param("client_assertion", assertion);
        }
        let http = self.discovery.http.client();
        let response = request.request_async(&http).await.map_err(|e| match e {
            RequestTokenError::ServerResponse(e) => SignInError::Refused {
                error: e.error().as_ref().to_string(),
            },
            RequestTokenError::Request(e) => {
                SignInError::unavailable(&self.config.name, describe(&e))
            }
            other => SignInError::BadResponse(format!("token response: {}", describe(&other))),
        })?;
        let id_token = response
            .id_token()
            .ok_or_else(|| SignInError::BadIdToken("the token response has no ID token".into()))?;
        let mut identity = self
            .verify_id_token(id_token, nonce, response.access_token())
            .await?;
        if identity.email.is_none() || identity.name.is_none() {
            self.add_userinfo(&client, response.access_token().clone(), &mut identity)
                .await;
        }
        Ok(identity)
    }

    /// Signature (by the provider's JWKS, refetched once for a new `kid`),
    /// `iss`, `aud`, `exp`, `iat` and `nonce`, and `at_hash` when present.
    ///
    /// Unlike a bearer token's, an ID token's unknown `kid` refetches the
    /// keys at once, not at most once per 30 s: the token came from the
    /// provider's token endpoint to this server, so no client can make up
    /// its `kid`; and a user signing in right after a rotation must not be
    /// turned away.
    async fn verify_id_token(
        &self,
        id_token: &CoreIdToken,
        nonce: &str,
        access_token: &openidconnect::AccessToken,
    ) -> Result<Identity, SignInError> {
        let nonce = Nonce::new(nonce.to_string());
        let mut snapshot = self.keys.snapshot();
        let mut refetched = false;
        loop {
            let verifier = self.verifier(&snapshot)?;
            match id_token.claims(&verifier, &nonce) {
                Ok(claims) => {
                    if let Some(expected) = claims.access_token_hash() {
                        let alg = id_token.signing_alg().map_err(bad_signature)?;
                        let key = id_token.signing_key(&verifier).map_err(bad_signature)?;
                        let actual = AccessTokenHash::from_token(access_token, alg, key)
                            .map_err(|e| SignInError::BadIdToken(format!("at_hash: {e}")))?;
                        if actual != *expected {
                            return Err(SignInError::BadIdToken(
                                "its at_hash does not match the access token".into(),
                            ));
                        }
                    }
                    return Ok(Identity {
                        subject: claims.subject().as_str().to_string(),
                        email: claims.email().map(|e| e.as_str().to_string()),
                        name: claims
                            .name()
                            .and_then(|n| n.get(None))
                            .map(|n| n.as_str().to_string()),
                    });
                }
                Err(openidconnect::ClaimsVerificationError::SignatureVerification(
                    openidconnect::SignatureVerificationError::NoMatchingKey,
                )) if !refetched => {
                    refetched = true;
                    if !self.keys.refresh().await {
                        return Err(SignInError::BadIdToken(
                            "it is signed by a key the provider does not publish".into(),
                        ));
                    }
                    snapshot = self.keys.snapshot();
                }
                Err(e) => return Err(SignInError::BadIdToken(id_token_refusal(&e))),
            }
        }
    }

    fn verifier(
        &self,
        snapshot: &KeySnapshot,
    ) -> Result<CoreIdTokenVerifier<'static>, SignInError> {
        let jwks: CoreJsonWebKeySet =
            serde_json::from_slice(snapshot.document()).map_err(|_| {
                SignInError::unavailable(&self.config.name, "no signing keys yet".into())
            })?;
        let leeway = chrono::Duration::from_std(self.leeway).unwrap_or_default();
        let max_age = chrono::Duration::from_std(MAX_ID_TOKEN_AGE).unwrap_or_default();
        let algs = self.config.id_token_algorithms.iter().map(|alg| match alg {
            jsonwebtoken::Algorithm::ES256 => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            _ => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        });
        Ok(CoreIdTokenVerifier::new_public_client(
            ClientId::new(self.config.client_id.clone()),
            IssuerUrl::new(self.config.issuer.clone()).expect("checked in config"),
            jwks,
        )
        .set_allowed_algs(algs)
        // `exp` with the configured clock leeway.
        .set_time_fn(move || Utc::now() - leeway)
        .set_issue_time_verifier_fn(move |iat: DateTime<Utc>| {
            let now = Utc::now();
            if iat > now + leeway {
                Err(format!("issued in the future ({iat})"))
            } else if iat < now - max_age - leeway {
                Err(format!("issued at {iat}, too long ago"))
            } else {
                Ok(())
            }
        }))
    }

    async fn add_userinfo(
        &self,
        client: &Client,
        token: openidconnect::AccessToken,
        identity: &mut Identity,
    ) {
        let subject = openidconnect::SubjectIdentifier::new(identity.subject.clone());
        let Ok(request) = client.user_info(token, Some(subject)) else {
            return; // the provider has no userinfo endpoint
        };
        let http = self.discovery.http.client();
        match request.request_async(&http).await {
            Ok(info) => {
                let info: CoreUserInfoClaims = info;
                identity.email = identity
                    .email
                    .take()
                    .or_else(|| info.email().map(|e| e.as_str().to_string()));
                identity.name = identity.name.take().or_else(|| {
                    info.name()
                        .and_then(|n| n.get(None))
                        .map(|n| n.as_str().to_string())
                });
            }
            // Who signed in is settled by the ID token; email and name are
            // extras, kept from the last sign-in if this one cannot add them.
            Err(e) => {
                tracing::warn!(provider = %self.config.name, error = %describe(&e), "userinfo failed; signing in without email and name")
            }
        }
    }

    /// Where to send the browser to end its session at the provider
    /// (RP-initiated logout), if the provider has such an endpoint.
    pub fn end_session_url(&self) -> Option<Url> {
        let (metadata, _) = self.discovery.cached()?;
        let endpoint = metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        Some(
            LogoutRequest::from(endpoint)
                .set_client_id(ClientId::new(self.config.client_id.clone()))
                .set_post_logout_redirect_uri(PostLogoutRedirectUrl::from_url(
                    self.config.post_logout_redirect_url.clone(),
                ))
                .http_get_url(),
        )
    }
}

fn bad_signature(e: openidconnect::SignatureVerificationError) -> SignInError {
    SignInError::BadIdToken(format!("its signature: {e}"))
}

/// What was wrong with an ID token, for the log and the error page.
fn id_token_refusal(e: &openidconnect::ClaimsVerificationError) -> String {
    use openidconnect::ClaimsVerificationError as E;
    match e {
        E::Expired(why) => format!("it has expired or is too old: {why}"),
        E::InvalidAudience(_) => "it was issued for another client (aud)".into(),
        E::InvalidIssuer(_) => "it was issued by another issuer (iss)".into(),
        E::InvalidNonce(_) => "its nonce is not this sign-in's".into(),
        E::SignatureVerification(e) => format!("its signature: {e}"),
        other => other.to_string(),
    }
}

/// An error with its causes.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
