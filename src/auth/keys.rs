//! Key material, read when the server (or a CLI command) starts: the files
//! that configuration names, and the development secret, made on first use.

use std::path::Path;

use jsonwebtoken::jwk::JwkSet;
use secrecy::{ExposeSecret, SecretBox};

use crate::config::{Hs256Secret, SessionSecret, TokenConfig};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{var}: cannot read `{path}`: {source}")]
    Read {
        var: std::borrow::Cow<'static, str>,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "JWT_HS256_SECRET is unset, and the development secret file `{path}` could not be used: {source}"
    )]
    DevelopmentSecret {
        path: String,
        source: std::io::Error,
    },
    #[error("JWT_HS256_SECRET cannot be used as a key")]
    BadSecret,
    #[error("SESSION_SECRET cannot be used as a key")]
    BadSessionSecret,
    #[error("JWT_PUBLIC_KEY_FILE is neither an RSA nor an EC public key in PEM form")]
    BadPem,
    #[error("JWT_JWKS_FILE is not a valid JWKS document: {0}")]
    BadJwks(String),
    #[error(
        "SESSION_SECRET is unset, and the development secret file `{path}` could not be used: {source}"
    )]
    DevelopmentSessionSecret {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{var}: `{path}` is not a PEM private key (PKCS#8 or PKCS#1 RSA, or PKCS#8/SEC1 EC P-256)"
    )]
    BadClientKey { var: String, path: String },
}

/// What the configured key files and secret hold.
pub(super) struct KeyMaterial {
    pub hs256_secret: Option<SecretBox<[u8]>>,
    pub public_key_pem: Option<Vec<u8>>,
    pub jwks: Option<JwkSet>,
}

pub(super) fn load(cfg: &TokenConfig) -> Result<KeyMaterial, KeyError> {
    let hs256_secret = match &cfg.hs256_secret {
        None => None,
        Some(Hs256Secret::Given(s)) => Some(secret_bytes(s.expose_secret().as_bytes())),
        Some(Hs256Secret::DevelopmentFile(path)) => Some(development_secret(path).map_err(
            |source| KeyError::DevelopmentSecret {
                path: path.display().to_string(),
                source,
            },
        )?),
    };
    let public_key_pem = cfg
        .public_key_file
        .as_deref()
        .map(|p| read("JWT_PUBLIC_KEY_FILE", p))
        .transpose()?;
    let jwks = cfg
        .jwks_file
        .as_deref()
        .map(|p| read("JWT_JWKS_FILE", p))
        .transpose()?
        .map(|bytes| serde_json::from_slice(&bytes).map_err(|e| KeyError::BadJwks(e.to_string())))
        .transpose()?;
    Ok(KeyMaterial {
        hs256_secret,
        public_key_pem,
        jwks,
    })
}

/// The session secret: given, or the development one (made on first use).
pub(super) fn session_secret(secret: &SessionSecret) -> Result<SecretBox<[u8]>, KeyError> {
    match secret {
        SessionSecret::Given(s) => Ok(secret_bytes(s.expose_secret().as_bytes())),
        SessionSecret::DevelopmentFile(path) => {
            development_secret(path).map_err(|source| KeyError::DevelopmentSessionSecret {
                path: path.display().to_string(),
                source,
            })
        }
    }
}

/// The private key this server signs its `private_key_jwt` client
/// assertions with, and the algorithm that goes with it (RSA: RS256, EC
/// P-256: ES256). `var` names the setting, for the error.
pub(super) fn client_signing_key(
    var: &str,
    path: &Path,
) -> Result<(jsonwebtoken::EncodingKey, jsonwebtoken::Algorithm), KeyError> {
    use jsonwebtoken::{Algorithm, EncodingKey};
    let pem = std::fs::read(path).map_err(|source| KeyError::Read {
        var: var.to_string().into(),
        path: path.display().to_string(),
        source,
    })?;
    let bad = || KeyError::BadClientKey {
        var: var.to_string(),
        path: path.display().to_string(),
    };
    // Only a private key will do: a public key or certificate in the file
    // would otherwise fail later, at the provider.
    let text = std::str::from_utf8(&pem).map_err(|_| bad())?;
    if !text.contains("PRIVATE KEY-----") {
        return Err(bad());
    }
    if text.contains("BEGIN RSA PRIVATE KEY") {
        return EncodingKey::from_rsa_pem(&pem)
            .map(|k| (k, Algorithm::RS256))
            .map_err(|_| bad());
    }
    if text.contains("BEGIN EC PRIVATE KEY") {
        return EncodingKey::from_ec_pem(&pem)
            .map(|k| (k, Algorithm::ES256))
            .map_err(|_| bad());
    }
    // PKCS#8 says its algorithm inside: try RSA, then EC, and sign a probe
    // to be sure the key works with that algorithm.
    for alg in [Algorithm::RS256, Algorithm::ES256] {
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
            _ => EncodingKey::from_ec_pem(&pem),
        };
        if let Ok(key) = key {
            let probe = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(alg),
                &serde_json::json!({ "probe": true }),
                &key,
            );
            if probe.is_ok() {
                return Ok((key, alg));
            }
        }
    }
    Err(bad())
}

fn secret_bytes(bytes: &[u8]) -> SecretBox<[u8]> {
    SecretBox::new(bytes.to_vec().into_boxed_slice())
}

fn read(var: &'static str, path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        var: var.into(),
        path: path.display().to_string(),
        source,
    })
}

/// Reads the development secret, creating a random one on first use.
fn development_secret(path: &Path) -> std::io::Result<SecretBox<[u8]>> {
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().len() >= 32 => Ok(secret_bytes(s.trim().as_bytes())),
        _ => {
            use rand::Rng;
            let secret: String = rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(48)
                .map(char::from)
                .collect();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            write_private(path, secret.as_bytes())?;
            tracing::warn!(
                path = %std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display(),
                "created a new development secret: tokens signed with an earlier one are refused"
            );
            Ok(secret_bytes(secret.as_bytes()))
        }
    }
}

/// Writes a file only its owner may read (0600 on Unix): it holds a key.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    #[test]
    fn the_development_secret_is_made_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dev-secret");
        let first = development_secret(&path).unwrap();
        let second = development_secret(&path).unwrap();
        assert_eq!(first.expose_secret().len(), 48);
        assert_eq!(first.expose_secret(), second.expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "only its owner may read it");
        }
    }

    #[test]
    fn client_keys_are_rsa_or_ec_private_keys() {
        let fixture = |name: &str| {
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
                .join(name)
        };
        let (_, alg) = client_signing_key(
            "OIDC_CLIENT_PRIVATE_KEY_FILE",
            &fixture("oidc_client_private.pem"),
        )
        .unwrap();
        assert_eq!(alg, jsonwebtoken::Algorithm::RS256);
        let (_, alg) =
            client_signing_key("OIDC_CLIENT_PRIVATE_KEY_FILE", &fixture("ec_private.pem")).unwrap();
        assert_eq!(alg, jsonwebtoken::Algorithm::ES256);
        let err = client_signing_key("OIDC_X_CLIENT_PRIVATE_KEY_FILE", &fixture("rsa_public.pem"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("OIDC_X_CLIENT_PRIVATE_KEY_FILE"), "{err}");
    }

    #[test]
    fn an_unreadable_key_file_names_its_variable_and_path() {
        let cfg = config(&[
            ("JWT_ALGORITHMS", "RS256"),
            ("JWT_PUBLIC_KEY_FILE", "/nonexistent/key.pem"),
        ])
        .unwrap();
        let err = load(&cfg.tokens).err().unwrap().to_string();
        assert!(err.contains("JWT_PUBLIC_KEY_FILE"), "{err}");
        assert!(err.contains("/nonexistent/key.pem"), "{err}");
    }
}
