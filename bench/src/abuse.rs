//! `bench/abuse`: what hostile traffic costs the server, each figure beside
//! its baseline in the same run.
//!
//! - slowloris: sockets that send half a request head; how many the server
//!   still holds after its header timeout, and `/healthz` latency meanwhile;
//! - slow readers: downloads whose clients read nothing; the server's RSS
//!   per reader, and how long until the kernel drops them;
//! - multipart bombs: bodies with no boundary; the server's RSS growth;
//! - an alias flood by one analyst; another analyst's latency meanwhile;
//! - storage down: time to 503 on a download and on `/readyz`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::{MIB, content, percentile, rss_kib, var};

struct Abuse {
    server: String,
    addr: String,
    pid: u32,
    http: reqwest::Client,
    /// The attacking analyst and an innocent one (both of STT 1).
    attacker: String,
    victim: String,
    header_timeout: Duration,
    user_timeout: Duration,
    rows: Vec<[String; 4]>,
}

pub async fn run() {
    let server = var("BENCH_SERVER");
    let secs = |name: &str| Duration::from_secs(var(name).parse().unwrap());
    let mut a = Abuse {
        addr: server.trim_start_matches("http://").to_string(),
        server,
        pid: var("BENCH_PID").parse().unwrap(),
        http: reqwest::Client::new(),
        attacker: var("BENCH_ATTACKER_TOKEN"),
        victim: var("BENCH_VICTIM_TOKEN"),
        header_timeout: secs("HTTP_HEADER_TIMEOUT_SECS"),
        user_timeout: secs("TCP_USER_TIMEOUT_SECS"),
        rows: Vec::new(),
    };
    a.slowloris(2000).await;
    a.slow_readers(50).await;
    a.multipart_bombs(4).await;
    a.alias_flood(8).await;
    a.storage_down(var("BENCH_WEED_PID").parse().unwrap()).await;
    a.print();
}

impl Abuse {
    fn row(&mut self, measure: &str, attack: String, baseline: String, bound: &str) {
        eprintln!("{measure}: {attack} (baseline {baseline})");
        self.rows
            .push([measure.into(), attack, baseline, bound.into()]);
    }

    fn print(&self) {
        println!(
            "{:<58} | {:>16} | {:>16} | bound",
            "measure", "under attack", "baseline"
        );
        println!("{}", "-".repeat(110));
        for [m, a, b, bound] in &self.rows {
            println!("{m:<58} | {a:>16} | {b:>16} | {bound}");
        }
    }

    /// `/healthz` over a new connection each time: p50 and max, in ms.
    async fn healthz_latency(&self, n: usize) -> (f64, f64) {
        let mut ms = Vec::new();
        for _ in 0..n {
            let started = Instant::now();
            let mut s = TcpStream::connect(&self.addr).await.unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf).await;
            ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (percentile(&ms, 0.5), *ms.last().unwrap())
    }

    async fn slowloris(&mut self, n: usize) {
        let (idle_p50, _) = self.healthz_latency(50).await;
        let rss_before = rss_kib(self.pid);
        let mut sockets = Vec::new();
        for _ in 0..n {
            match TcpStream::connect(&self.addr).await {
                Ok(mut s) => {
                    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: b\r\nX-Slow: ")
                        .await
                        .is_ok()
                    {
                        sockets.push(s);
                    }
                }
                Err(e) => eprintln!("slowloris connect: {e}"),
            }
        }
        let opened = sockets.len();
        let (busy_p50, busy_max) = self.healthz_latency(50).await;
        let rss_during = rss_kib(self.pid);
        tokio::time::sleep(self.header_timeout + Duration::from_secs(1)).await;
        let mut held = 0;
        for s in &mut sockets {
            let mut buf = [0u8; 64];
            // A closed socket reads 0 (or errs) at once; a held one blocks.
            let read = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await;
            if read.is_err() {
                held += 1;
            }
        }
        self.row(
            &format!(
                "slowloris: sockets held {} s after {n} half heads",
                self.header_timeout.as_secs() + 1
            ),
            format!("{held} of {opened}"),
            "-".into(),
            "0 after the header timeout",
        );
        self.row(
            "slowloris: /healthz p50 (max) on a new connection",
            format!("{busy_p50:.2} ({busy_max:.1}) ms"),
            format!("{idle_p50:.2} ms"),
            "served throughout",
        );
        self.row(
            "slowloris: server RSS growth while held",
            format!(
                "{:.1} MiB",
                (rss_during.saturating_sub(rss_before)) as f64 / 1024.0
            ),
            "-".into(),
            "-",
        );
    }

    /// Uploads `bytes` as the victim; the download route's path.
    async fn upload(&self, bytes: Vec<u8>) -> String {
        let (id, _) = super::upload(
            &self.http,
            &self.server,
            &self.victim,
            &bytes.into(),
            "abuse.txt",
        )
        .await;
        format!("/v1/report-files/{id}/download")
    }

    async fn active_downloads(&self) -> u64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.server))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("reportfiles_active_downloads "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    async fn slow_readers(&mut self, n: usize) {
        let url = self.upload(content(64 * MIB, 7).bytes.to_vec()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_before = rss_kib(self.pid);
        let mut sockets = Vec::new();
        for _ in 0..n {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let mut s = socket.connect(self.addr.parse().unwrap()).await.unwrap();
            let head = format!(
                "GET {url} HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {}\r\n\r\n",
                self.victim
            );
            s.write_all(head.as_bytes()).await.unwrap();
            sockets.push(s);
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let per_reader = rss_kib(self.pid).saturating_sub(rss_before) as f64 / n as f64;
        let started = Instant::now();
        let deadline = self.user_timeout * 3;
        while self.active_downloads().await > 0 && started.elapsed() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let left = self.active_downloads().await;
        self.row(
            &format!("slow readers: server RSS per reader ({n} reading nothing)"),
            format!("{per_reader:.0} KiB"),
            "-".into(),
            "a few chunks",
        );
        self.row(
            "slow readers: time until the kernel dropped them all",
            if left == 0 {
                format!("{:.1} s", started.elapsed().as_secs_f64() + 3.0)
            } else {
                format!("{left} still open")
            },
            "-".into(),
            &format!("TCP_USER_TIMEOUT_SECS = {}", self.user_timeout.as_secs()),
        );
        drop(sockets);
    }

    async fn multipart_bombs(&mut self, n: usize) {
        let rss_before = rss_kib(self.pid);
        let peak = Arc::new(std::sync::atomic::AtomicU64::new(rss_before));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, stop, pid) = (peak.clone(), stop.clone(), self.pid);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..n {
            let (addr, token) = (self.addr.clone(), self.attacker.clone());
            tasks.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(&addr).await.unwrap();
                let head = format!(
                    "POST /graphql HTTP/1.1\r\nHost: b\r\nApollo-Require-Preflight: true\r\n\
                     Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {}\r\n\
                     Authorization: Bearer {token}\r\n\r\n",
                    256 * MIB
                );
                s.write_all(head.as_bytes()).await.unwrap();
                let filler = vec![b'x'; 64 * 1024];
                let mut sent = 0;
                let (mut r, mut w) = s.into_split();
                let writing = async {
                    while sent < 256 * MIB {
                        if w.write_all(&filler).await.is_err() {
                            break;
                        }
                        sent += filler.len();
                    }
                };
                let mut buf = [0u8; 32];
                tokio::select! {
                    _ = writing => {}
                    _ = r.read(&mut buf) => {}
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        sampler.join().unwrap();
        let grew = peak.load(Ordering::Relaxed).saturating_sub(rss_before);
        self.row(
            &format!("multipart bombs: peak RSS growth ({n} x 256 MiB, no boundary)"),
            format!("{:.1} MiB", grew as f64 / 1024.0),
            "-".into(),
            "<= 16 MiB",
        );
        self.row(
            "multipart bombs: time until all were refused",
            format!("{:.0} ms", took.as_secs_f64() * 1e3),
            "-".into(),
            "-",
        );
    }

    async fn query_ms(&self, token: &str, query: &str) -> f64 {
        let started = Instant::now();
        let res = self
            .http
            .post(format!("{}/graphql", self.server))
            .bearer_auth(token)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap();
        let _ = res.bytes().await;
        started.elapsed().as_secs_f64() * 1e3
    }

    async fn alias_flood(&mut self, parallel: usize) {
        const VICTIM: &str =
            "{ reportFiles(first: 10) { totalCount edges { node { id originalFilename } } } }";
        let bomb = format!(
            "{{ {} }}",
            (0..1000)
                .map(|i| format!("a{i}: reportFiles(first: 0) {{ totalCount }}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        // At least 200 queries and 5 s: long enough for the flood to be at
        // its height, whatever the server does to the attacker.
        let measure = async |a: &Abuse| {
            let mut ms = Vec::new();
            let started = Instant::now();
            while ms.len() < 200 || started.elapsed() < Duration::from_secs(5) {
                ms.push(a.query_ms(&a.victim, VICTIM).await);
            }
            ms.sort_by(|x, y| x.partial_cmp(y).unwrap());
            (percentile(&ms, 0.5), percentile(&ms, 0.99))
        };
        let (idle_p50, idle_p99) = measure(self).await;
        let stop = Arc::new(AtomicBool::new(false));
        let mut attackers = Vec::new();
        for _ in 0..parallel {
            let (http, server, token, bomb, stop) = (
                self.http.clone(),
                self.server.clone(),
                self.attacker.clone(),
                bomb.clone(),
                stop.clone(),
            );
            attackers.push(tokio::spawn(async move {
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let res = http
                        .post(format!("{server}/graphql"))
                        .bearer_auth(&token)
                        .json(&json!({ "query": bomb }))
                        .send()
                        .await;
                    if let Ok(res) = res {
                        let _ = res.bytes().await;
                    }
                    sent += 1;
                }
                sent
            }));
        }
        let flood_started = Instant::now();
        let (busy_p50, busy_p99) = measure(self).await;
        let flood_secs = flood_started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let mut bombs = 0;
        for a in attackers {
            bombs += a.await.unwrap_or(0);
        }
        self.row(
            &format!(
                "alias flood ({parallel} parallel, {bombs} sent in {flood_secs:.1} s): other analyst p50"
            ),
            format!("{busy_p50:.2} ms"),
            format!("{idle_p50:.2} ms"),
            "-",
        );
        self.row(
            "alias flood: other analyst p99",
            format!("{busy_p99:.2} ms"),
            format!("{idle_p99:.2} ms"),
            "-",
        );
    }

    async fn storage_down(&mut self, weed_pid: u32) {
        let url = self.upload(content(MIB, 9).bytes.to_vec()).await;
        let timed = async |a: &Abuse, path: &str| {
            let started = Instant::now();
            let res = a
                .http
                .get(format!("{}{path}", a.server))
                .bearer_auth(&a.victim)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let _ = res.bytes().await;
            (status, started.elapsed().as_secs_f64() * 1e3)
        };
        let (_, ready_up) = timed(self, "/readyz").await;
        let (_, download_up) = timed(self, &url).await;
        let _ = std::process::Command::new("kill")
            .args(["-9", &weed_pid.to_string()])
            .status();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (status, download_down) = timed(self, &url).await;
        self.row(
            "storage down: download answered",
            format!("{status} in {download_down:.0} ms"),
            format!("200 in {download_up:.1} ms"),
            "503 within 1 s",
        );
        let (status, ready_down) = timed(self, "/readyz").await;
        self.row(
            "storage down: /readyz answered",
            format!("{status} in {ready_down:.0} ms"),
            format!("200 in {ready_up:.1} ms"),
            "503 within 1 s",
        );
    }
}
