//! Private nginx processes in front of a test's server, as a deployment's
//! load balancer is: Debian's nginx (`ensure_nginx` in scripts/services.sh
//! installs it), each process with its own config, pid file, logs and
//! temporary folders under a folder of its own, on a free loopback port, in
//! the foreground, killed when dropped. No system nginx is used. Without
//! nginx the tests that need it fail; they never skip.

use std::{
    net::{SocketAddr, TcpListener},
    process::{Child, Command, Stdio},
    time::Duration,
};

use tempfile::TempDir;

use super::wait_until;

/// What one nginx does.
pub struct NginxSpec<'a> {
    /// The loopback address it listens on: `127.0.0.1` or `[::1]`.
    pub listen: &'a str,
    /// Where it passes requests: `host:port` (`[::1]:port` for IPv6).
    pub upstream: &'a str,
    /// The source address of its connections upstream (`proxy_bind`), so
    /// that each hop of a chain has an address of its own on loopback.
    pub source: Option<&'a str>,
    /// TLS on its listener (a self-signed certificate made for the test),
    /// as a TLS-terminating balancer.
    pub tls: bool,
    /// What it sends as `X-Forwarded-Proto`: `$scheme` at the edge,
    /// `$http_x_forwarded_proto` behind another proxy.
    pub proto: &'a str,
}

impl Default for NginxSpec<'_> {
    fn default() -> Self {
        NginxSpec {
            listen: "127.0.0.1",
            upstream: "",
            source: None,
            tls: false,
            proto: "$scheme",
        }
    }
}

pub struct Nginx {
    /// `http://127.0.0.1:PORT` (or `https://`, `[::1]`).
    pub base: String,
    /// `127.0.0.1:PORT`, for the next proxy of a chain.
    pub authority: String,
    child: Child,
    dir: TempDir,
}

fn nginx_bin() -> String {
    std::env::var("TEST_NGINX_BIN")
        .ok()
        .or_else(|| {
            ["/usr/sbin/nginx", "/usr/bin/nginx"]
                .into_iter()
                .find(|p| std::path::Path::new(p).exists())
                .map(str::to_string)
        })
        .expect(
            "nginx is required for the load-balancer tests: run them through scripts/test \
             (ensure_nginx installs Debian's nginx)",
        )
}

/// A port free on `host` now.
fn free_port(host: &str) -> u16 {
    let addr: SocketAddr = format!("{host}:0").parse().unwrap();
    TcpListener::bind(addr)
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nginx {
    pub async fn start(spec: NginxSpec<'_>) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display().to_string();
        let port = free_port(spec.listen);
        let authority = format!("{}:{port}", spec.listen);
        let mut listen = format!("listen {authority}");
        if spec.tls {
            self_signed_certificate(&path);
            listen.push_str(&format!(
                " ssl;\n        ssl_certificate {path}/cert.pem;\n        ssl_certificate_key {path}/key.pem"
            ));
        }
        let bind = spec
            .source
            .map(|s| format!("proxy_bind {s};"))
            .unwrap_or_default();
        // One process (no master, no workers): nothing to drop privileges
        // to, and killing it by its pid ends it all.
        let config = format!(
            "daemon off;
master_process off;
pid {path}/nginx.pid;
error_log {path}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {path}/access.log;
    client_body_temp_path {path}/client_body;
    proxy_temp_path {path}/proxy;
    fastcgi_temp_path {path}/fastcgi;
    uwsgi_temp_path {path}/uwsgi;
    scgi_temp_path {path}/scgi;
    client_max_body_size 0;
    server {{
        {listen};
        location / {{
            proxy_pass http://{upstream};
            {bind}
            proxy_http_version 1.1;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto {proto};
        }}
    }}
}}
",
            upstream = spec.upstream,
            proto = spec.proto,
        );
        std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
        let child = Command::new(nginx_bin())
            .args(["-p", &path, "-c", &format!("{path}/nginx.conf")])
            .args(["-e", &format!("{path}/error.log")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let scheme = if spec.tls { "https" } else { "http" };
        let mut nginx = Nginx {
            base: format!("{scheme}://{authority}"),
            authority,
            child,
            dir,
        };
        nginx.wait_listening().await;
        nginx
    }

    async fn wait_listening(&mut self) {
        let addr: SocketAddr = self.authority.parse().unwrap();
        let log = self.dir.path().join("error.log");
        let child = &mut self.child;
        wait_until(Duration::from_secs(10), "nginx listens", async || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "nginx exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cert.pem` and `key.pem` in `dir`: a certificate for 127.0.0.1 that the
/// tests' clients accept without checking.
fn self_signed_certificate(dir: &str) {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-keyout", &format!("{dir}/key.pem")])
        .args(["-out", &format!("{dir}/cert.pem")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl makes the test certificate (ensure_nginx installs it)");
    assert!(status.success(), "openssl req failed");
}
