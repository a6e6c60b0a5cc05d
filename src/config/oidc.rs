//! Sign-in through OpenID Connect providers (Login.gov, the agency's own):
//! which providers, and how this server is registered with each as a
//! confidential client. Endpoints and keys come from each provider's
//! discovery document, fetched when the server starts (`auth::oidc`).
//!
//! One provider: `OIDC_ISSUER_URL`, `OIDC_CLIENT_ID`, ... Several:
//! `OIDC_PROVIDERS=logingov,agency`, then `OIDC_LOGINGOV_ISSUER_URL`,
//! `OIDC_AGENCY_CLIENT_ID`, ... (the name in upper case, `-` as `_`).

use std::{borrow::Cow, path::PathBuf};

use jsonwebtoken::Algorithm;
use openidconnect::url::Url;
use secrecy::SecretString;

use super::{ConfigError, Environment, Vars};

/// The name of the provider configured by the unprefixed `OIDC_*` variables.
pub const DEFAULT_PROVIDER: &str = "default";

#[derive(Debug, Clone, Default)]
pub struct OidcConfig {
    /// In the order configured; the first is used when `/auth/login` names
    /// none.
    pub providers: Vec<ProviderConfig>,
}

impl OidcConfig {
    pub fn is_configured(&self) -> bool {
        !self.providers.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// What `/auth/login?provider=` calls it.
    pub name: String,
    /// The issuer identifier, exactly as the provider writes it in `iss`
    /// (a trailing `/` matters); discovery is
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_auth: ClientAuth,
    /// This server's `/auth/callback`, exactly as registered with the provider.
    pub redirect_url: Url,
    /// Where the provider sends the browser after signing out: this server's
    /// `/auth/signed-out`, registered with the provider.
    pub post_logout_redirect_url: Url,
    /// Scopes asked for; always with `openid`.
    pub scopes: Vec<String>,
    /// More authorization request parameters (Login.gov wants `acr_values`).
    pub auth_params: Vec<(String, String)>,
    /// Algorithms the provider's ID tokens may be signed with.
    pub id_token_algorithms: Vec<Algorithm>,
}

/// How this server authenticates itself at the provider's token endpoint.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// `private_key_jwt` (Login.gov): a JWT signed with this PEM key (RSA
    /// for RS256, EC P-256 for ES256), with `kid` when given.
    PrivateKeyJwt {
        key_file: PathBuf,
        key_id: Option<String>,
    },
    /// `client_secret_basic`.
    ClientSecretBasic(SecretString),
}

impl OidcConfig {
    pub(crate) fn parse(env: &Vars<'_>, environment: Environment) -> Result<Self, ConfigError> {
        let names = match env.get("OIDC_PROVIDERS") {
            None => None,
            Some(list) => Some(provider_names(&list)?),
        };
        let providers = match names {
            None if env.get("OIDC_ISSUER_URL").is_none() => Vec::new(),
            None => vec![ProviderConfig::parse(
                env,
                environment,
                DEFAULT_PROVIDER,
                "OIDC_",
            )?],
            Some(_) if env.get("OIDC_ISSUER_URL").is_some() => {
                return Err(ConfigError::new(
                    "OIDC_ISSUER_URL",
                    "is for a single provider; with OIDC_PROVIDERS set, name each \
                     provider's variables (OIDC_<NAME>_ISSUER_URL, ...)",
                ));
            }
            Some(names) => names
                .iter()
                .map(|name| {
                    let prefix = format!("OIDC_{}_", name.to_ascii_uppercase().replace('-', "_"));
                    ProviderConfig::parse(env, environment, name, &prefix)
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(OidcConfig { providers })
    }
}

fn provider_names(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut names: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let plain = name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !plain {
            return Err(ConfigError::new(
                "OIDC_PROVIDERS",
                format!(
                    "`{name}` is not a provider name: lower-case letters, digits and `-`, up to 32"
                ),
            ));
        }
        if names.iter().any(|n| n == name) {
            return Err(ConfigError::new(
                "OIDC_PROVIDERS",
                format!("`{name}` is listed twice"),
            ));
        }
        names.push(name.to_string());
    }
    if names.is_empty() {
        return Err(ConfigError::new("OIDC_PROVIDERS", "names no provider"));
    }
    Ok(names)
}

impl ProviderConfig {
    fn parse(
        env: &Vars<'_>,
        environment: Environment,
        name: &str,
        prefix: &str,
    ) -> Result<Self, ConfigError> {
        let var = |suffix: &str| -> Cow<'static, str> { format!("{prefix}{suffix}").into() };
        let get = |suffix: &str| env.get(&var(suffix));
        let required = |suffix: &str| {
            get(suffix).ok_or_else(|| {
                ConfigError::new(var(suffix), "is required for OpenID Connect sign-in")
            })
        };
        let production = environment == Environment::Production;
        let url = |suffix: &str, raw: &str| parse_url(var(suffix), raw, production);

        let issuer = required("ISSUER_URL")?.trim().to_string();
        url("ISSUER_URL", &issuer)?;
        let client_id = required("CLIENT_ID")?;
        let client_auth = match (get("CLIENT_PRIVATE_KEY_FILE"), get("CLIENT_SECRET")) {
            (Some(file), None) => ClientAuth::PrivateKeyJwt {
                key_file: PathBuf::from(file),
                key_id: get("CLIENT_KEY_ID"),
            },
            (None, Some(secret)) => ClientAuth::ClientSecretBasic(SecretString::from(secret)),
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    var("CLIENT_SECRET"),
                    format!(
                        "set {} (private_key_jwt) or {} (client_secret_basic), not both",
                        var("CLIENT_PRIVATE_KEY_FILE"),
                        var("CLIENT_SECRET")
                    ),
                ));
            }
            (None, None) => {
                return Err(ConfigError::new(
                    var("CLIENT_PRIVATE_KEY_FILE"),
                    format!(
                        "the server must authenticate at the token endpoint: set {} \
                         (a PEM private key, for private_key_jwt) or {}",
                        var("CLIENT_PRIVATE_KEY_FILE"),
                        var("CLIENT_SECRET")
                    ),
                ));
            }
        };
        let redirect_url = url("REDIRECT_URL", &required("REDIRECT_URL")?)?;
        let post_logout_redirect_url = match get("POST_LOGOUT_REDIRECT_URL") {
            Some(raw) => url("POST_LOGOUT_REDIRECT_URL", &raw)?,
            None => redirect_url
                .join("/auth/signed-out")
                .map_err(|e| ConfigError::new(var("REDIRECT_URL"), e.to_string()))?,
        };
        let scopes: Vec<String> = get("SCOPES")
            .unwrap_or_else(|| "openid email profile".into())
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if !scopes.iter().any(|s| s == "openid") {
            return Err(ConfigError::new(
                var("SCOPES"),
                "must include `openid` (space-separated, e.g. `openid email profile`)",
            ));
        }
        let auth_params = form_urlencoded::parse(get("AUTH_PARAMS").unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect::<Vec<_>>();
        // The flow's own parameters are this server's to set.
        const OWN: [&str; 9] = [
            "client_id",
            "redirect_uri",
            "response_type",
            "scope",
            "state",
            "nonce",
            "code_challenge",
            "code_challenge_method",
            "response_mode",
        ];
        if let Some((k, _)) = auth_params.iter().find(|(k, _)| OWN.contains(&k.as_str())) {
            return Err(ConfigError::new(
                var("AUTH_PARAMS"),
                format!("`{k}` is set by the server itself"),
            ));
        }
        let id_token_algorithms = match get("ID_TOKEN_ALGORITHMS") {
            None => vec![Algorithm::RS256],
            Some(list) => {
                let algs = super::tokens::parse_algorithm_list(var("ID_TOKEN_ALGORITHMS"), &list)?;
                if algs.contains(&Algorithm::HS256) {
                    return Err(ConfigError::new(
                        var("ID_TOKEN_ALGORITHMS"),
                        "ID tokens are verified with the provider's public keys: RS256 and/or ES256",
                    ));
                }
                algs
            }
        };
        Ok(ProviderConfig {
            name: name.to_string(),
            issuer,
            client_id,
            client_auth,
            redirect_url,
            post_logout_redirect_url,
            scopes,
            auth_params,
            id_token_algorithms,
        })
    }
}

/// An absolute http(s) URL; https in production.
fn parse_url(var: Cow<'static, str>, raw: &str, production: bool) -> Result<Url, ConfigError> {
    let url = Url::parse(raw.trim())
        .map_err(|e| ConfigError::new(var.clone(), format!("`{raw}` is not a URL: {e}")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if !production => Ok(url),
        "http" => Err(ConfigError::new(
            var,
            format!("`{raw}`: production talks to providers over https only"),
        )),
        _ => Err(ConfigError::new(
            var,
            format!("`{raw}` is not an http(s) URL"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    const ONE: [(&str, &str); 4] = [
        ("OIDC_ISSUER_URL", "https://idp.example.gov"),
        (
            "OIDC_CLIENT_ID",
            "urn:gov:gsa:openidconnect.profiles:sp:sso:agency:reportfiles",
        ),
        (
            "OIDC_CLIENT_PRIVATE_KEY_FILE",
            "/etc/reportfiles/client.pem",
        ),
        (
            "OIDC_REDIRECT_URL",
            "https://reports.example.gov/auth/callback",
        ),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut vars = ONE.to_vec();
        vars.extend_from_slice(extra);
        vars
    }

    #[test]
    fn no_issuer_means_no_sign_in() {
        assert!(!config(&[]).unwrap().oidc.is_configured());
    }

    #[test]
    fn one_provider_from_the_plain_variables() {
        let c = config(&with(&[])).unwrap().oidc;
        let [p] = c.providers.as_slice() else {
            panic!("one provider: {c:?}")
        };
        assert_eq!(p.name, DEFAULT_PROVIDER);
        assert_eq!(p.issuer, "https://idp.example.gov");
        assert!(matches!(
            p.client_auth,
            ClientAuth::PrivateKeyJwt { key_id: None, .. }
        ));
        assert_eq!(p.scopes, ["openid", "email", "profile"]);
        assert_eq!(
            p.post_logout_redirect_url.as_str(),
            "https://reports.example.gov/auth/signed-out"
        );
        assert_eq!(p.id_token_algorithms, [Algorithm::RS256]);
    }

    #[test]
    fn each_missing_or_bad_setting_is_named() {
        for (vars, name) in [
            (
                vec![("OIDC_ISSUER_URL", "https://idp.example.gov")],
                "OIDC_CLIENT_ID",
            ),
            (
                ONE.iter()
                    .copied()
                    .filter(|(k, _)| !k.contains("PRIVATE_KEY"))
                    .collect(),
                "OIDC_CLIENT_PRIVATE_KEY_FILE",
            ),
            (with(&[("OIDC_CLIENT_SECRET", "s")]), "OIDC_CLIENT_SECRET"),
            (
                with(&[("OIDC_ISSUER_URL", "idp.example.gov")]),
                "OIDC_ISSUER_URL",
            ),
            (
                with(&[("OIDC_REDIRECT_URL", "ftp://x/auth/callback")]),
                "OIDC_REDIRECT_URL",
            ),
            (with(&[("OIDC_SCOPES", "email profile")]), "OIDC_SCOPES"),
            (
                with(&[("OIDC_AUTH_PARAMS", "nonce=fixed")]),
                "OIDC_AUTH_PARAMS",
            ),
            (
                with(&[("OIDC_ID_TOKEN_ALGORITHMS", "HS256")]),
                "OIDC_ID_TOKEN_ALGORITHMS",
            ),
            (
                with(&[("OIDC_ID_TOKEN_ALGORITHMS", "none")]),
                "OIDC_ID_TOKEN_ALGORITHMS",
            ),
            (with(&[("OIDC_PROVIDERS", "a")]), "OIDC_ISSUER_URL"),
            (vec![("OIDC_PROVIDERS", "Login.gov")], "OIDC_PROVIDERS"),
            (vec![("OIDC_PROVIDERS", "a,a")], "OIDC_PROVIDERS"),
        ] {
            let err = config(&vars).unwrap_err();
            assert_eq!(err.name, name, "{vars:?}: {err}");
        }
    }

    #[test]
    fn production_talks_to_providers_over_https_only() {
        let err = config(&with(&[
            ("APP_ENV", "production"),
            ("JWT_ALGORITHMS", "RS256"),
            ("OIDC_ISSUER_URL", "http://idp.example.gov"),
        ]))
        .unwrap_err();
        assert_eq!(err.name, "OIDC_ISSUER_URL");
        let dev = config(&with(&[("OIDC_ISSUER_URL", "http://127.0.0.1:9000")])).unwrap();
        assert_eq!(dev.oidc.providers[0].issuer, "http://127.0.0.1:9000");
    }

    #[test]
    fn several_providers_each_with_their_own_variables() {
        let c = config(&[
            ("OIDC_PROVIDERS", "logingov, agency-idp"),
            ("OIDC_LOGINGOV_ISSUER_URL", "https://secure.login.gov"),
            ("OIDC_LOGINGOV_CLIENT_ID", "urn:gov:gsa:sp:reportfiles"),
            ("OIDC_LOGINGOV_CLIENT_PRIVATE_KEY_FILE", "/k.pem"),
            ("OIDC_LOGINGOV_CLIENT_KEY_ID", "k1"),
            (
                "OIDC_LOGINGOV_REDIRECT_URL",
                "https://r.example.gov/auth/callback",
            ),
            (
                "OIDC_LOGINGOV_AUTH_PARAMS",
                "acr_values=urn:acr.login.gov:auth-only&prompt=select_account",
            ),
            (
                "OIDC_AGENCY_IDP_ISSUER_URL",
                "https://idp.agency.gov/realms/staff",
            ),
            ("OIDC_AGENCY_IDP_CLIENT_ID", "reportfiles"),
            ("OIDC_AGENCY_IDP_CLIENT_SECRET", "agency-secret"),
            (
                "OIDC_AGENCY_IDP_REDIRECT_URL",
                "https://r.example.gov/auth/callback",
            ),
            ("OIDC_AGENCY_IDP_SCOPES", "openid email"),
            ("OIDC_AGENCY_IDP_ID_TOKEN_ALGORITHMS", "RS256,ES256"),
        ])
        .unwrap()
        .oidc;
        let names: Vec<_> = c.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["logingov", "agency-idp"]);
        let login = &c.providers[0];
        assert!(matches!(
            &login.client_auth,
            ClientAuth::PrivateKeyJwt { key_id: Some(k), .. } if k == "k1"
        ));
        assert_eq!(
            login.auth_params,
            [
                (
                    "acr_values".to_string(),
                    "urn:acr.login.gov:auth-only".to_string()
                ),
                ("prompt".to_string(), "select_account".to_string())
            ]
        );
        let agency = &c.providers[1];
        assert!(matches!(
            agency.client_auth,
            ClientAuth::ClientSecretBasic(_)
        ));
        assert_eq!(agency.scopes, ["openid", "email"]);
        assert_eq!(
            agency.id_token_algorithms,
            [Algorithm::RS256, Algorithm::ES256]
        );
        let err = config(&[
            ("OIDC_PROVIDERS", "logingov"),
            ("OIDC_LOGINGOV_ISSUER_URL", "https://secure.login.gov"),
        ])
        .unwrap_err();
        assert_eq!(err.name, "OIDC_LOGINGOV_CLIENT_ID");
    }

    #[test]
    fn the_client_secret_never_shows_in_debug_output() {
        let c = config(&[
            ("OIDC_ISSUER_URL", "https://idp.example.gov"),
            ("OIDC_CLIENT_ID", "rf"),
            ("OIDC_CLIENT_SECRET", "very-secret-client-secret"),
            ("OIDC_REDIRECT_URL", "https://r.example.gov/auth/callback"),
        ])
        .unwrap();
        assert!(!format!("{c:?}").contains("very-secret-client-secret"));
    }
}
