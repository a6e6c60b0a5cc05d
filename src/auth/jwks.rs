//! Keys fetched from a JWKS URL (`JWT_JWKS_URL`, or an OpenID provider's
//! `jwks_uri`): providers rotate their signing keys, which a key file cannot
//! follow.
//!
//! - Fetched when the server starts, then again every `JWKS_CACHE_TTL_SECS`
//!   by a background task (every 30 s at most while fetches fail).
//! - A token signed by a key this cache does not know (`kid`) makes it
//!   fetch again at once, but at most once per [`KID_REFRESH_INTERVAL`]:
//!   tokens with made-up `kid`s cannot make the server hammer the provider.
//! - A fetch that fails, or brings a document without a usable key, changes
//!   nothing: the last good keys stay in use while the provider is down.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, RwLock, Weak},
    time::Duration,
};

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse},
};
use tokio::time::Instant;

/// The least time between two fetches caused by unknown `kid`s.
pub const KID_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// How often a failing source is tried again (when its TTL is longer).
const RETRY_WHILE_DOWN: Duration = Duration::from_secs(30);

/// One verification key and the one algorithm it verifies.
pub(crate) struct VerifyKey {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub key: DecodingKey,
}

/// What one fetch brought: the keys, and the document itself (the OIDC
/// client reads its own types from it).
#[derive(Default)]
pub struct KeySnapshot {
    pub(crate) keys: Vec<VerifyKey>,
    pub(crate) document: Vec<u8>,
}

impl KeySnapshot {
    /// The usable keys of a JWKS document; `None` if it has none (or is not
    /// a JWKS).
    pub(crate) fn parse(document: Vec<u8>) -> Result<Self, String> {
        let set: JwkSet =
            serde_json::from_slice(&document).map_err(|e| format!("not a JWKS document: {e}"))?;
        let keys = verify_keys(&set.keys);
        if keys.is_empty() {
            return Err("the JWKS document has no RS256 or ES256 signing key".into());
        }
        Ok(KeySnapshot { keys, document })
    }

    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().filter_map(|k| k.kid.as_deref()).collect()
    }

    /// The JWKS document the keys came from.
    pub fn document(&self) -> &[u8] {
        &self.document
    }
}

/// The RS256 and ES256 signing keys among `jwks`, each with its algorithm.
/// Encryption keys and keys of other types or curves are left out.
pub(crate) fn verify_keys(jwks: &[Jwk]) -> Vec<VerifyKey> {
    jwks.iter()
        .filter(|jwk| !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)))
        .filter_map(|jwk| {
            let by_type = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                _ => return None,
            };
            // A key that names its algorithm verifies that one only.
            let alg = match jwk.common.key_algorithm {
                None => by_type,
                Some(KeyAlgorithm::RS256) if by_type == Algorithm::RS256 => by_type,
                Some(KeyAlgorithm::ES256) if by_type == Algorithm::ES256 => by_type,
                Some(_) => return None,
            };
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some(VerifyKey {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            })
        })
        .collect()
}

/// Fetches the JWKS document (its bytes), or says why it could not.
pub type Fetch =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>> + Send + Sync>;

/// A cached key set from one source, kept fresh.
pub struct RemoteKeys {
    /// For log lines: where the keys come from.
    source: String,
    fetch: Fetch,
    ttl: Duration,
    state: RwLock<State>,
    /// One fetch at a time; whoever waited for it uses its result.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    snapshot: Arc<KeySnapshot>,
    /// Bumped by every successful fetch.
    generation: u64,
    last_ok: Option<Instant>,
    last_failed: bool,
    last_kid_refresh: Option<Instant>,
}

impl RemoteKeys {
    pub fn new(source: impl Into<String>, ttl: Duration, fetch: Fetch) -> Arc<Self> {
        Arc::new(RemoteKeys {
            source: source.into(),
            fetch,
            ttl,
            state: RwLock::default(),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// Fetches the keys once (a failure is logged: the server starts all
    /// the same, and keeps trying), then keeps them fresh in the background
    /// for as long as `self` lives.
    pub async fn start(self: &Arc<Self>) {
        self.refresh().await;
        let weak = Arc::downgrade(self);
        tokio::spawn(refresh_periodically(weak));
    }

    /// The keys now.
    pub fn snapshot(&self) -> Arc<KeySnapshot> {
        self.read().snapshot.clone()
    }

    /// When the keys were last fetched successfully.
    pub fn last_fetched(&self) -> Option<Instant> {
        self.read().last_ok
    }

    /// Fetches now (one fetch at a time); keeps the last good keys if it
    /// fails. Whether the keys are fresh from a fetch, this one or one that
    /// ran while this call waited.
    pub async fn refresh(&self) -> bool {
        let before = self.read().generation;
        let _one = self.fetching.lock().await;
        if self.read().generation != before {
            return true;
        }
        self.fetch_and_keep().await
    }

    /// A token named a key this cache does not know: fetch again, unless a
    /// fetch for that reason ran less than [`KID_REFRESH_INTERVAL`] ago.
    /// Whether there are fresh keys to look in.
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        let before = self.read().generation;
        let _one = self.fetching.lock().await;
        if self.read().generation != before {
            return true;
        }
        let now = Instant::now();
        {
            let mut state = self.write();
            if state
                .last_kid_refresh
                .is_some_and(|t| now.duration_since(t) < KID_REFRESH_INTERVAL)
            {
                tracing::info!(source = %self.source, "unknown key id: not fetching the keys again yet (at most once per 30 s)");
                return false;
            }
            state.last_kid_refresh = Some(now);
        }
        self.fetch_and_keep().await
    }

    /// Takes a JWKS document fetched by someone else (OIDC discovery brings
    /// one along) as if this cache had fetched it.
    pub fn accept(&self, document: Vec<u8>) -> bool {
        match KeySnapshot::parse(document) {
            Ok(snapshot) => {
                self.keep(snapshot);
                true
            }
            Err(reason) => {
                tracing::warn!(source = %self.source, %reason, "keys not updated");
                false
            }
        }
    }

    async fn fetch_and_keep(&self) -> bool {
        let result = (self.fetch)().await.and_then(KeySnapshot::parse);
        match result {
            Ok(snapshot) => {
                self.keep(snapshot);
                true
            }
            Err(reason) => {
                let mut state = self.write();
                state.last_failed = true;
                let kept = state.snapshot.keys.len();
                drop(state);
                tracing::warn!(source = %self.source, %reason, kept_keys = kept, "fetching signing keys failed; the last good keys stay in use");
                false
            }
        }
    }

    fn keep(&self, snapshot: KeySnapshot) {
        let mut state = self.write();
        let before: Vec<&str> = state.snapshot.kids();
        let after: Vec<&str> = snapshot.kids();
        if before != after {
            tracing::info!(source = %self.source, kids = ?after, "signing keys updated");
        }
        state.snapshot = Arc::new(snapshot);
        state.generation += 1;
        state.last_ok = Some(Instant::now());
        state.last_failed = false;
    }

    /// How long until the next periodic fetch.
    fn next_wait(&self) -> Duration {
        if self.read().last_failed {
            self.ttl.min(RETRY_WHILE_DOWN)
        } else {
            self.ttl
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The background refresh: ends when the cache is dropped.
async fn refresh_periodically(weak: Weak<RemoteKeys>) {
    loop {
        let Some(wait) = weak.upgrade().map(|keys| keys.next_wait()) else {
            return;
        };
        tokio::time::sleep(wait).await;
        let Some(keys) = weak.upgrade() else { return };
        keys.refresh().await;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    };

    /// A JWKS document with the test RSA key under each of `kids`.
    pub(crate) fn jwks(kids: &[&str]) -> Vec<u8> {
        let fixture: serde_json::Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/jwks.json"
        )))
        .unwrap();
        let rsa = fixture["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kty"] == "RSA")
            .unwrap()
            .clone();
        let keys: Vec<_> = kids
            .iter()
            .map(|kid| {
                let mut k = rsa.clone();
                k["kid"] = (*kid).into();
                k
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap()
    }

    /// A source whose answer the test sets, counting fetches.
    struct Source {
        answer: Mutex<Result<Vec<u8>, String>>,
        fetches: AtomicUsize,
    }

    fn cache(ttl: Duration) -> (Arc<RemoteKeys>, Arc<Source>) {
        let source = Arc::new(Source {
            answer: Mutex::new(Ok(jwks(&["a"]))),
            fetches: AtomicUsize::new(0),
        });
        let s = source.clone();
        let keys = RemoteKeys::new(
            "test",
            ttl,
            Box::new(move || {
                let s = s.clone();
                Box::pin(async move {
                    s.fetches.fetch_add(1, Ordering::SeqCst);
                    // A fetch takes time: concurrent callers overlap it.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    s.answer.lock().unwrap().clone()
                })
            }),
        );
        (keys, source)
    }

    fn kids(keys: &RemoteKeys) -> Vec<String> {
        keys.snapshot()
            .kids()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_fetched_at_start_and_again_after_the_ttl() {
        let (keys, source) = cache(Duration::from_secs(300));
        keys.start().await;
        assert_eq!(kids(&keys), ["a"]);
        *source.answer.lock().unwrap() = Ok(jwks(&["b"]));
        tokio::time::sleep(Duration::from_secs(299)).await;
        assert_eq!(kids(&keys), ["a"], "not before the TTL");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(kids(&keys), ["b"]);
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_good_keys_stay_while_the_source_fails() {
        let (keys, source) = cache(Duration::from_secs(300));
        keys.start().await;
        *source.answer.lock().unwrap() = Err("connection refused".into());
        tokio::time::sleep(Duration::from_secs(301)).await;
        assert_eq!(kids(&keys), ["a"]);
        // A document without a usable key is a failure too.
        *source.answer.lock().unwrap() = Ok(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.to_vec());
        assert!(!keys.refresh().await);
        assert_eq!(kids(&keys), ["a"]);
        // While failing, it tries every 30 s rather than every TTL.
        let before = source.fetches.load(Ordering::SeqCst);
        *source.answer.lock().unwrap() = Ok(jwks(&["c"]));
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert_eq!(kids(&keys), ["c"]);
        assert_eq!(source.fetches.load(Ordering::SeqCst), before + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_kids_refetch_at_most_once_per_interval() {
        let (keys, source) = cache(Duration::from_secs(3600));
        keys.start().await;
        *source.answer.lock().unwrap() = Ok(jwks(&["b", "a"]));
        assert!(
            keys.refresh_for_unknown_kid().await,
            "the first one fetches"
        );
        assert_eq!(kids(&keys), ["b", "a"]);
        *source.answer.lock().unwrap() = Ok(jwks(&["c"]));
        for _ in 0..100 {
            assert!(!keys.refresh_for_unknown_kid().await);
        }
        assert_eq!(
            source.fetches.load(Ordering::SeqCst),
            2,
            "start and one refetch"
        );
        tokio::time::sleep(KID_REFRESH_INTERVAL).await;
        assert!(keys.refresh_for_unknown_kid().await);
        assert_eq!(kids(&keys), ["c"]);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_refreshes_share_one_fetch() {
        let (keys, source) = cache(Duration::from_secs(3600));
        let all = futures_util::future::join_all((0..20).map(|_| keys.refresh())).await;
        assert!(all.into_iter().all(|fresh| fresh));
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_background_refresh_ends_with_the_cache() {
        let (keys, source) = cache(Duration::from_secs(10));
        keys.start().await;
        drop(keys);
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn only_rs256_and_es256_signing_keys_are_kept() {
        let doc = serde_json::json!({ "keys": [
            { "kty": "oct", "k": "c2VjcmV0", "kid": "hmac" },
            { "kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB" },
            { "kty": "RSA", "alg": "PS256", "kid": "ps", "n": "AQAB", "e": "AQAB" },
            { "kty": "RSA", "alg": "RS256", "kid": "rs", "n": "AQAB", "e": "AQAB" },
        ]});
        let snapshot = KeySnapshot::parse(serde_json::to_vec(&doc).unwrap()).unwrap();
        assert_eq!(snapshot.kids(), ["rs"]);
        assert_eq!(snapshot.keys[0].alg, Algorithm::RS256);
    }
}
