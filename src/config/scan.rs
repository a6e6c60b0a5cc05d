//! Virus scanning: whether uploads must pass ClamAV, and where its daemon
//! (clamd) listens.

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use super::{ConfigError, Environment, Vars};

/// Where clamd listens: `tcp://host:port` or `unix:/path/to/clamd.ctl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddr {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

impl FromStr for ClamdAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("tcp://") {
            let rest = rest.trim_end_matches('/');
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| format!("`{s}` has no port (tcp://host:port)"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(format!("`{s}` has no host (tcp://host:port)"));
            }
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("`{s}` has no valid port (tcp://host:port)"))?;
            Ok(ClamdAddr::Tcp {
                host: host.to_string(),
                port,
            })
        } else if let Some(rest) = s.strip_prefix("unix:") {
            // unix:/run/clamav/clamd.ctl, or the URL form unix:///run/...
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if !path.starts_with('/') {
                return Err(format!(
                    "`{s}` is not an absolute socket path (unix:/path/to/clamd.ctl)"
                ));
            }
            Ok(ClamdAddr::Unix(PathBuf::from(path)))
        } else {
            Err(format!(
                "`{s}` is neither tcp://host:port nor unix:/path/to/clamd.ctl"
            ))
        }
    }
}

impl fmt::Display for ClamdAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClamdAddr::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            ClamdAddr::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            ClamdAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// `AV_SCAN`: whether every upload must be scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AvScan {
    /// Uploads are stored unscanned (development, or explicitly chosen).
    Off,
    /// Every upload is scanned by this clamd; without an answer, nothing is
    /// stored (fail closed).
    Required { clamd: ClamdAddr },
}

#[derive(Debug, Clone)]
pub struct ScanConfig {
    pub av_scan: AvScan,
    /// `CLAMD_TIMEOUT_SECS`: the longest clamd may keep the server waiting,
    /// on each write of a chunk and for the answer after the last one.
    pub timeout: Duration,
}

pub const DEFAULT_CLAMD_TIMEOUT_SECS: u64 = 60;

impl ScanConfig {
    pub(crate) fn parse(env: &Vars<'_>, environment: Environment) -> Result<Self, ConfigError> {
        let clamd = env
            .get("CLAMD_ADDR")
            .map(|raw| raw.parse::<ClamdAddr>())
            .transpose()
            .map_err(|e| ConfigError::new("CLAMD_ADDR", e))?;
        let timeout: u64 = env.parse("CLAMD_TIMEOUT_SECS", DEFAULT_CLAMD_TIMEOUT_SECS)?;
        if timeout == 0 {
            return Err(ConfigError::new(
                "CLAMD_TIMEOUT_SECS",
                "must be at least 1 second",
            ));
        }
        let av_scan = match env.get("AV_SCAN").as_deref().map(str::trim) {
            Some("off") => AvScan::Off,
            Some("required") => AvScan::Required {
                clamd: clamd.ok_or_else(|| {
                    ConfigError::new(
                        "CLAMD_ADDR",
                        "AV_SCAN=required needs clamd's address (tcp://host:3310 or unix:/path)",
                    )
                })?,
            },
            Some(other) => {
                return Err(ConfigError::new(
                    "AV_SCAN",
                    format!("`{other}` is not `required` or `off`"),
                ));
            }
            // Unset: scan whenever clamd is configured. Production scans,
            // and turning that off takes an explicit AV_SCAN=off.
            None => match (clamd, environment) {
                (Some(clamd), _) => AvScan::Required { clamd },
                (None, Environment::Development) => AvScan::Off,
                (None, Environment::Production) => {
                    return Err(ConfigError::new(
                        "CLAMD_ADDR",
                        "production scans every upload: set CLAMD_ADDR (tcp://host:3310 or \
                         unix:/path), or AV_SCAN=off to run without virus scanning",
                    ));
                }
            },
        };
        Ok(ScanConfig {
            av_scan,
            timeout: Duration::from_secs(timeout),
        })
    }

    /// clamd's address when every upload must be scanned.
    pub fn required(&self) -> Option<&ClamdAddr> {
        match &self.av_scan {
            AvScan::Required { clamd } => Some(clamd),
            AvScan::Off => None,
        }
    }
}

/// The start-up banner's warning line, when uploads go unscanned.
pub fn banner_warning(config: &ScanConfig) -> Option<&'static str> {
    match config.av_scan {
        AvScan::Off => Some(
            "WARNING: virus scanning is OFF (AV_SCAN=off or no CLAMD_ADDR): uploads are stored unscanned",
        ),
        AvScan::Required { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    fn prod(vars: &[(&'static str, &'static str)]) -> Result<ScanConfig, ConfigError> {
        let mut all = vec![("APP_ENV", "production"), ("JWT_ALGORITHMS", "HS256")];
        all.extend_from_slice(vars);
        config(&all).map(|c| c.scan)
    }

    #[test]
    fn development_defaults_to_off_with_a_warning() {
        let c = config(&[]).unwrap().scan;
        assert_eq!(c.av_scan, AvScan::Off);
        assert_eq!(c.timeout, Duration::from_secs(DEFAULT_CLAMD_TIMEOUT_SECS));
        assert!(
            banner_warning(&c)
                .unwrap()
                .contains("virus scanning is OFF")
        );
    }

    #[test]
    fn a_clamd_address_turns_scanning_on() {
        let c = config(&[("CLAMD_ADDR", "tcp://127.0.0.1:3310")])
            .unwrap()
            .scan;
        assert_eq!(
            c.required(),
            Some(&ClamdAddr::Tcp {
                host: "127.0.0.1".into(),
                port: 3310
            })
        );
        assert_eq!(banner_warning(&c), None);
        let c = config(&[("CLAMD_ADDR", "tcp://127.0.0.1:3310"), ("AV_SCAN", "off")])
            .unwrap()
            .scan;
        assert_eq!(c.av_scan, AvScan::Off);
    }

    #[test]
    fn production_scans_unless_told_off_explicitly() {
        assert_eq!(prod(&[]).unwrap_err().name, "CLAMD_ADDR");
        assert_eq!(
            prod(&[("AV_SCAN", "required")]).unwrap_err().name,
            "CLAMD_ADDR"
        );
        assert_eq!(prod(&[("AV_SCAN", "off")]).unwrap().av_scan, AvScan::Off);
        let c = prod(&[("CLAMD_ADDR", "unix:/run/clamav/clamd.ctl")]).unwrap();
        assert_eq!(
            c.required(),
            Some(&ClamdAddr::Unix("/run/clamav/clamd.ctl".into()))
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("AV_SCAN", "maybe"),
            ("CLAMD_ADDR", "127.0.0.1:3310"),
            ("CLAMD_ADDR", "tcp://127.0.0.1"),
            ("CLAMD_ADDR", "tcp://:3310"),
            ("CLAMD_ADDR", "tcp://host:http"),
            ("CLAMD_ADDR", "unix:relative/clamd.ctl"),
            ("CLAMD_TIMEOUT_SECS", "0"),
            ("CLAMD_TIMEOUT_SECS", "soon"),
        ] {
            let err = config(&[(name, value)]).unwrap_err();
            assert_eq!(err.name, name, "{value}");
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn addresses_parse_and_print_back() {
        for (raw, printed) in [
            ("tcp://clamd.internal:3310", "tcp://clamd.internal:3310"),
            ("tcp://[::1]:3310", "tcp://[::1]:3310"),
            ("unix:/run/clamav/clamd.ctl", "unix:/run/clamav/clamd.ctl"),
            ("unix:///run/clamav/clamd.ctl", "unix:/run/clamav/clamd.ctl"),
        ] {
            assert_eq!(raw.parse::<ClamdAddr>().unwrap().to_string(), printed);
        }
    }
}
