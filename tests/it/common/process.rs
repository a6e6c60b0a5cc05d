//! The real server binary, started as a second instance of a test's server.

use std::{
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use super::{TestApp, wait_for, wait_until};

/// A server process: killed when dropped.
pub struct ServerProcess {
    pub base: String,
    child: Child,
    /// Where its standard output (the banner and the log) goes.
    output: std::path::PathBuf,
}

impl ServerProcess {
    /// Sends SIGTERM, as an orchestrator stopping the instance would.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Everything the process printed so far: the banner, then log lines.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// The server's address, for raw sockets.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// The server's resident memory now, in bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kb * 1024
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Whether a new TCP connection to the server is accepted now.
    pub async fn accepts_connections(&self) -> bool {
        let addr = self.base.trim_start_matches("http://");
        tokio::net::TcpStream::connect(addr).await.is_ok()
    }

    /// Waits for the process to exit; fails the test if it has not `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let child = &mut self.child;
        wait_for(within, "the server process exits", async || {
            child.try_wait().unwrap()
        })
        .await
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestApp {
    /// Runs the command line (`reportfiles ARGS`) with this server's
    /// configuration, from a folder of its own: its exit status and output.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let dir = tempfile::tempdir().unwrap();
        Command::new(env!("CARGO_BIN_EXE_reportfiles"))
            .args(args)
            .current_dir(dir.path())
            .envs(&self.env)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    }

    /// Another server process (the real binary) on this one's database and
    /// storage, as a second instance behind a load balancer would be.
    pub async fn spawn_process(&self) -> ServerProcess {
        self.spawn_process_with(&[]).await
    }

    pub async fn spawn_process_with(&self, vars: &[(&str, &str)]) -> ServerProcess {
        self.spawn_process_on("127.0.0.1", vars).await
    }

    /// [`TestApp::spawn_process_with`], listening on `host` (`[::1]` for
    /// IPv6 loopback).
    pub async fn spawn_process_on(&self, host: &str, vars: &[(&str, &str)]) -> ServerProcess {
        let port = std::net::TcpListener::bind(format!("{host}:0"))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let output = self.dir.path().join(format!("server-{port}.log"));
        let mut env = self.env.clone();
        env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        super::server::give_production_keys(&mut env);
        let child = Command::new(env!("CARGO_BIN_EXE_reportfiles"))
            .arg("serve")
            .current_dir(self.dir.path())
            .envs(&env)
            .env("BIND_ADDR", format!("{host}:{port}"))
            .env("RUST_LOG", "warn")
            // The test's own variables win, over those two as well.
            .envs(vars.iter().copied())
            .stdout(Stdio::from(std::fs::File::create(&output).unwrap()))
            .spawn()
            .unwrap();
        let process = ServerProcess {
            base: format!("http://{host}:{port}"),
            child,
            output,
        };
        let health = format!("{}/healthz", process.base);
        // A client of its own that keeps no connection open afterwards: some
        // tests count the server's connections.
        let probe = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        wait_until(
            Duration::from_secs(10),
            "the second server process answers /healthz",
            async || {
                probe
                    .get(&health)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            },
        )
        .await;
        process
    }
}
