//! The byte-path and GraphQL benchmark. Run through `bench/run`, which
//! starts SeaweedFS, PostgreSQL and the release server and passes their
//! coordinates in the environment. Every download is compared, in the same
//! run and alternating, with the same object fetched straight from S3 by a
//! pre-signed URL: the design the route replaces.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::{
    ObjectStoreExt, WriteMultipart, aws::AmazonS3, aws::AmazonS3Builder, path::Path, signer::Signer,
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MIB: usize = 1 << 20;
const GIB: usize = 1 << 30;
/// Rounds of the GraphQL load, for the spread of its p99.
const GRAPHQL_ROUNDS: usize = 5;

struct Bench {
    server: String,
    pid: u32,
    token: String,
    db: DatabaseConnection,
    s3: AmazonS3,
    http: reqwest::Client,
    quick: bool,
    rows: Vec<Row>,
    /// The second server, scanning every upload with clamd.
    scanning: Scanning,
}

/// The server with `AV_SCAN=required`, and the clamd it scans with.
struct Scanning {
    server: String,
    pid: u32,
    clamd_pid: u32,
}

/// One line of the result table.
struct Row {
    section: &'static str,
    measure: String,
    route: String,
    direct: String,
    ratio: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set (run bench/run)"))
}

mod abuse;
mod wan;

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("abuse") {
        return abuse::run().await;
    }
    if std::env::args().nth(1).as_deref() == Some("wan") {
        return wan::run(std::env::args().nth(2).as_deref()).await;
    }
    let s3 = s3();
    let mut bench = Bench {
        server: var("BENCH_SERVER"),
        pid: var("BENCH_PID").parse().unwrap(),
        token: var("BENCH_TOKEN"),
        db: Database::connect(var("DATABASE_URL")).await.unwrap(),
        s3,
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap(),
        quick: std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1"),
        rows: Vec::new(),
        scanning: Scanning {
            server: var("BENCH_SCAN_SERVER"),
            pid: var("BENCH_SCAN_PID").parse().unwrap(),
            clamd_pid: var("BENCH_CLAMD_PID").parse().unwrap(),
        },
    };
    let sizes: Vec<(usize, &str, usize)> = if bench.quick {
        vec![
            (MIB, "1 MiB", 5),
            (64 * MIB, "64 MiB", 5),
            (256 * MIB, "256 MiB", 3),
        ]
    } else {
        vec![
            (MIB, "1 MiB", 9),
            (64 * MIB, "64 MiB", 7),
            (GIB, "1 GiB", 3),
        ]
    };

    // BENCH_ONLY=downloads,uploads,graphql runs only those parts.
    let only = std::env::var("BENCH_ONLY").ok();
    let part = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|p| p == name))
    };
    let mut summary = Vec::new();

    if part("downloads") {
        // Upload through the GraphQL route first: those are the objects
        // both sides then download.
        let mut uploaded = Vec::new();
        for (size, label, _) in &sizes {
            let data = content(*size, *size as u64);
            let (id, took) = bench.upload_route(&data.bytes, "bench.txt").await;
            eprintln!("uploaded {label} through the route in {took:.2?}");
            uploaded.push((id, data));
        }
        let mut ratios = Vec::new();
        for ((size, label, rounds), (id, data)) in sizes.iter().zip(&uploaded) {
            let big = *size >= 256 * MIB;
            let r = bench.compare_downloads(label, id, data, *rounds, big).await;
            ratios.push(format!("{label} {r:.2}"));
        }
        summary.push(format!(
            "downloads (route/direct throughput): {}",
            ratios.join(", ")
        ));
        let concurrent = bench.concurrent(&uploaded[1].0, &uploaded[1].1).await;
        summary.push(format!(
            "16 parallel 64 MiB downloads (route/direct aggregate throughput): {concurrent:.2}"
        ));
    }
    if part("uploads") {
        let (off, on) = bench.compare_uploads(&sizes[2]).await;
        summary.push(format!(
            "upload {} (route/direct multipart PUT throughput): {off:.2} scanning off, {on:.2} scanning on",
            sizes[2].1
        ));
    }
    if part("graphql") {
        let (p99_small, p99_large) = bench.graphql().await;
        summary.push(format!(
            "graphql reportFiles(first: 50) p99: {p99_small:.2} ms at 10k rows, {p99_large:.2} ms at 1M rows"
        ));
    }

    bench.print_table();
    println!();
    for line in summary {
        println!("{line}");
    }
}

/// Streams `bytes` to the clamd at `TEST_CLAMD_ADDR` in 1 MiB chunks with
/// the server's client; returns the time to send them all, and the time
/// from there to the verdict.
async fn clamd_alone(bytes: &Bytes) -> (Duration, Duration) {
    let addr = var("TEST_CLAMD_ADDR").parse().unwrap();
    let scanner = reportfiles::scan::Scanner::new(addr, Duration::from_secs(600));
    let started = Instant::now();
    let mut session = scanner.start().await.unwrap();
    for chunk in bytes.chunks(MIB) {
        session.feed(chunk).await.unwrap();
    }
    let streamed = started.elapsed();
    let verdict = session.finish().await.unwrap();
    assert_eq!(verdict, reportfiles::scan::Verdict::Clean);
    (streamed, started.elapsed() - streamed)
}

/// Deterministic text content and its SHA-256.
struct Content {
    bytes: Bytes,
    sha256: String,
}

fn content(len: usize, seed: u64) -> Content {
    let mut state = seed | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        // xorshift64: fast, and the output is text (letters, digits, newlines).
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        for b in state.to_le_bytes() {
            if v.len() == len {
                break;
            }
            let c = match b % 64 {
                0 => b'\n',
                n @ 1..=26 => b'a' + n - 1,
                n @ 27..=52 => b'A' + n - 27,
                n => b'0' + (n - 53) % 10,
            };
            v.push(c);
        }
    }
    let sha256 = hex(&Sha256::digest(&v));
    Content {
        bytes: Bytes::from(v),
        sha256,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Body of `bytes` in 1 MiB pieces, without copying.
/// Uploads `data` as `name` through the GraphQL route of the server at
/// `server`, streamed 1 MiB at a time, and checks the hash the server
/// reports: the new file's id, and how long the upload took.
async fn upload(
    http: &reqwest::Client,
    server: &str,
    token: &str,
    data: &Bytes,
    name: &str,
) -> (String, Duration) {
    let operations = json!({
        "query": "mutation($input: UploadReportFileInput!, $file: Upload!) { uploadReportFile(input: $input, file: $file) { id sha256 } }",
        "variables": { "input": { "sttId": 1, "fiscalYear": 2026, "quarter": "Q1", "section": "ACTIVE_CASE_DATA" }, "file": null }
    });
    let part = reqwest::multipart::Part::stream_with_length(body(data), data.len() as u64)
        .file_name(name.to_string());
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", r#"{"0":["variables.file"]}"#)
        .part("0", part);
    let started = Instant::now();
    let res: Value = http
        .post(format!("{server}/graphql"))
        .bearer_auth(token)
        .header("apollo-require-preflight", "true")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let took = started.elapsed();
    let file = &res["data"]["uploadReportFile"];
    let id = file["id"]
        .as_str()
        .unwrap_or_else(|| panic!("upload failed: {res}"))
        .to_string();
    assert_eq!(
        file["sha256"].as_str().unwrap(),
        hex(&Sha256::digest(data)),
        "server hash"
    );
    (id, took)
}

/// The bench's own S3 client, for the bucket the server stores in.
fn s3() -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(var("AWS_ENDPOINT_URL"))
        .with_bucket_name(var("BENCH_BUCKET"))
        .with_access_key_id(var("AWS_ACCESS_KEY_ID"))
        .with_secret_access_key(var("AWS_SECRET_ACCESS_KEY"))
        .with_region("us-east-1")
        .with_allow_http(true)
        .with_client_options(
            object_store::ClientOptions::new()
                .with_allow_http(true)
                .with_timeout_disabled(),
        )
        .build()
        .unwrap()
}

fn body(bytes: &Bytes) -> reqwest::Body {
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..bytes.len())
        .step_by(MIB)
        .map(|i| Ok(bytes.slice(i..(i + MIB).min(bytes.len()))))
        .collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

struct Fetch {
    ttfb: Duration,
    total: Duration,
    bytes: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// The server's resident memory and CPU time, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time of the process, in seconds: its live threads' at nanosecond
/// precision (`/proc/PID/task/*/schedstat`; /proc/PID/stat counts 10 ms
/// ticks, too coarse for 1 MiB), plus, in ticks, what threads that have
/// exited used (the process's ticks minus its live threads'). Without the
/// latter, a blocking-pool thread that exits between two readings takes
/// its time with it, and the difference can come out negative.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let (mut live_nanos, mut live_ticks) = (0u64, 0u64);
    for task in tasks.filter_map(|t| t.ok()) {
        let Some(ticks) = stat_ticks(&task.path().join("stat")) else {
            continue;
        };
        let Some(nanos) = std::fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        else {
            continue;
        };
        live_nanos += nanos;
        live_ticks += ticks;
    }
    let all_ticks = stat_ticks(std::path::Path::new(&format!("/proc/{pid}/stat"))).unwrap_or(0);
    // USER_HZ is 100 on Linux.
    live_nanos as f64 / 1e9 + all_ticks.saturating_sub(live_ticks) as f64 / 100.0
}

/// utime + stime of a /proc stat file, in clock ticks.
fn stat_ticks(path: &std::path::Path) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which may hold spaces: state is the
    // first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn write_bytes(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Samples the server's RSS every 2 ms until dropped; reports the peak.
struct RssPeak {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssPeak {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        RssPeak {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.peak.load(Ordering::Relaxed)
    }
}

impl Bench {
    fn row(
        &mut self,
        section: &'static str,
        measure: impl Into<String>,
        route: String,
        direct: String,
        ratio: String,
    ) {
        let measure = measure.into();
        eprintln!("{section}: {measure}: {route} | {direct} | {ratio}");
        self.rows.push(Row {
            section,
            measure,
            route,
            direct,
            ratio,
        });
    }

    async fn upload_route(&self, data: &Bytes, name: &str) -> (String, Duration) {
        self.upload_to(&self.server, data, name).await
    }

    /// Uploads through the server at `server`, checking the hash it reports.
    async fn upload_to(&self, server: &str, data: &Bytes, name: &str) -> (String, Duration) {
        upload(&self.http, server, &self.token, data, name).await
    }

    async fn object_key(&self, id: &str) -> String {
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                self.db.get_database_backend(),
                format!("SELECT object_key FROM report_files WHERE id = '{id}'"),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<String>("", "object_key").unwrap()
    }

    async fn presigned(&self, id: &str) -> String {
        let key = self.object_key(id).await;
        self.s3
            .signed_url(
                reqwest::Method::GET,
                &Path::from(key),
                Duration::from_secs(3600),
            )
            .await
            .unwrap()
            .to_string()
    }

    /// Downloads `url` whole, hashing every byte, and checks the hash.
    async fn fetch(&self, url: &str, auth: bool, want_sha: &str) -> Fetch {
        let started = Instant::now();
        let mut req = self.http.get(url);
        if auth {
            req = req.bearer_auth(&self.token);
        }
        let res = req.send().await.unwrap();
        assert!(res.status().is_success(), "{url}: {}", res.status());
        let mut stream = res.bytes_stream();
        let mut hasher = Sha256::new();
        let mut ttfb = None;
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            ttfb.get_or_insert_with(|| started.elapsed());
            bytes += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let total = started.elapsed();
        assert_eq!(hex(&hasher.finalize()), want_sha, "sha256 of {url}");
        Fetch {
            ttfb: ttfb.unwrap_or(total),
            total,
            bytes,
        }
    }

    async fn compare_downloads(
        &mut self,
        label: &'static str,
        id: &str,
        data: &Content,
        rounds: usize,
        big: bool,
    ) -> f64 {
        let route_url = format!("{}/v1/report-files/{id}/download", self.server);
        let direct_url = self.presigned(id).await;
        // Warm both paths (connections, caches) once, unmeasured.
        self.fetch(&route_url, true, &data.sha256).await;
        self.fetch(&direct_url, false, &data.sha256).await;
        let (mut rt, mut dt, mut rttfb, mut dttfb) = (vec![], vec![], vec![], vec![]);
        let idle_rss = rss_kib(self.pid);
        let cpu_before = cpu_secs(self.pid);
        let mut route_bytes = 0u64;
        let mut peak = 0u64;
        for _ in 0..rounds {
            let sampler = big.then(|| RssPeak::start(self.pid));
            let r = self.fetch(&route_url, true, &data.sha256).await;
            if let Some(s) = sampler {
                peak = peak.max(s.finish());
            }
            route_bytes += r.bytes;
            let d = self.fetch(&direct_url, false, &data.sha256).await;
            rt.push(r.bytes as f64 / r.total.as_secs_f64());
            dt.push(d.bytes as f64 / d.total.as_secs_f64());
            rttfb.push(r.ttfb.as_secs_f64() * 1e3);
            dttfb.push(d.ttfb.as_secs_f64() * 1e3);
        }
        let cpu = cpu_secs(self.pid) - cpu_before;
        let (r, d) = (median(rt), median(dt));
        let (rt_ms, dt_ms) = (median(rttfb), median(dttfb));
        let mbs = |v: f64| format!("{:.0} MB/s", v / 1e6);
        self.row(
            "download",
            format!("{label} throughput (median of {rounds})"),
            mbs(r),
            mbs(d),
            format!("{:.2}", r / d),
        );
        self.row(
            "download",
            format!("{label} time to first byte"),
            format!("{rt_ms:.2} ms"),
            format!("{dt_ms:.2} ms"),
            format!("{:+.2} ms", rt_ms - dt_ms),
        );
        let gib = route_bytes as f64 / GIB as f64;
        self.row(
            "download",
            format!("{label} server CPU per GiB sent"),
            format!("{:.2} s", cpu / gib),
            "-".into(),
            "-".into(),
        );
        if big {
            let growth = peak.saturating_sub(idle_rss) as f64 / 1024.0;
            self.row(
                "download",
                format!("{label} server peak RSS growth over idle"),
                format!("{growth:.1} MiB"),
                "-".into(),
                "-".into(),
            );
        }
        r / d
    }

    async fn concurrent(&mut self, id: &str, data: &Content) -> f64 {
        let route_url = format!("{}/v1/report-files/{id}/download", self.server);
        let direct_url = self.presigned(id).await;
        let mut ratios = Vec::new();
        let mut last = None;
        for _ in 0..2 {
            let r = self.parallel(&route_url, true, &data.sha256, 16).await;
            let d = self.parallel(&direct_url, false, &data.sha256, 16).await;
            ratios.push(r.0 / d.0);
            last = Some((r, d));
        }
        let (r, d) = last.unwrap();
        let ratio = median(ratios);
        self.row(
            "parallel",
            "16 x 64 MiB aggregate throughput",
            format!("{:.0} MB/s", r.0 / 1e6),
            format!("{:.0} MB/s", d.0 / 1e6),
            format!("{ratio:.2}"),
        );
        self.row(
            "parallel",
            "16 x 64 MiB TTFB p50",
            format!("{:.2} ms", r.1),
            format!("{:.2} ms", d.1),
            format!("{:+.2} ms", r.1 - d.1),
        );
        self.row(
            "parallel",
            "16 x 64 MiB TTFB max",
            format!("{:.2} ms", r.2),
            format!("{:.2} ms", d.2),
            format!("{:+.2} ms", r.2 - d.2),
        );
        ratio
    }

    /// (aggregate bytes/s, TTFB p50 ms, TTFB max ms)
    async fn parallel(&self, url: &str, auth: bool, sha: &str, n: usize) -> (f64, f64, f64) {
        let started = Instant::now();
        let fetches =
            futures_util::future::join_all((0..n).map(|_| self.fetch(url, auth, sha))).await;
        let wall = started.elapsed().as_secs_f64();
        let bytes: u64 = fetches.iter().map(|f| f.bytes).sum();
        let mut ttfb: Vec<f64> = fetches.iter().map(|f| f.ttfb.as_secs_f64() * 1e3).collect();
        ttfb.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (
            bytes as f64 / wall,
            percentile(&ttfb, 0.5),
            *ttfb.last().unwrap(),
        )
    }

    /// The upload of `size` bytes three ways, alternating: through the
    /// route with scanning off, through the route of the server that scans
    /// with clamd, and as a direct S3 multipart PUT. Returns the ratios
    /// (scanning off, scanning on) of route to direct throughput.
    async fn compare_uploads(&mut self, (size, label, _): &(usize, &str, usize)) -> (f64, f64) {
        let data = content(*size, 7);
        let (mut route, mut scanned, mut direct) = (Vec::new(), Vec::new(), Vec::new());
        let (mut peak_growth, mut scan_peak_growth) = (0u64, 0u64);
        let (mut written, mut scan_written, mut clamd_written) = (0u64, 0u64, 0u64);
        let mut clamd_cpu = 0.0;
        let rounds = 2;
        for i in 0..rounds {
            let idle = rss_kib(self.pid);
            let io_before = write_bytes(self.pid);
            let sampler = RssPeak::start(self.pid);
            let (_, took) = self.upload_route(&data.bytes, "bench-upload.txt").await;
            peak_growth = peak_growth.max(sampler.finish().saturating_sub(idle));
            written += write_bytes(self.pid) - io_before;
            route.push(*size as f64 / took.as_secs_f64());

            let (pid, clamd) = (self.scanning.pid, self.scanning.clamd_pid);
            let idle = rss_kib(pid);
            let io_before = write_bytes(pid);
            let clamd_io_before = write_bytes(clamd);
            let clamd_cpu_before = cpu_secs(clamd);
            let sampler = RssPeak::start(pid);
            let server = self.scanning.server.clone();
            let (_, took) = self
                .upload_to(&server, &data.bytes, "bench-scanned.txt")
                .await;
            scan_peak_growth = scan_peak_growth.max(sampler.finish().saturating_sub(idle));
            scan_written += write_bytes(pid) - io_before;
            clamd_written += write_bytes(clamd) - clamd_io_before;
            clamd_cpu += cpu_secs(clamd) - clamd_cpu_before;
            scanned.push(*size as f64 / took.as_secs_f64());

            let started = Instant::now();
            let upload = self
                .s3
                .put_multipart(&Path::from(format!("bench-direct/{i}")))
                .await
                .unwrap();
            let mut w = WriteMultipart::new_with_chunk_size(upload, 8 * MIB);
            for off in (0..*size).step_by(MIB) {
                w.wait_for_capacity(2).await.unwrap();
                w.put(data.bytes.slice(off..(off + MIB).min(*size)));
            }
            w.finish().await.unwrap();
            direct.push(*size as f64 / started.elapsed().as_secs_f64());
        }
        let (r, sc, d) = (median(route), median(scanned), median(direct));
        let mb = |v: f64| format!("{:.0} MB/s", v / 1e6);
        let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
        let none = || "-".to_string();
        self.row(
            "upload",
            format!("{label} throughput, scanning off"),
            mb(r),
            mb(d),
            format!("{:.2}", r / d),
        );
        self.row(
            "upload",
            format!("{label} throughput, scanning on"),
            mb(sc),
            mb(d),
            format!("{:.2}", sc / d),
        );
        self.row(
            "upload",
            format!("{label} server peak RSS growth, scanning off"),
            mib(peak_growth),
            none(),
            none(),
        );
        self.row(
            "upload",
            format!("{label} server peak RSS growth, scanning on"),
            mib(scan_peak_growth),
            none(),
            none(),
        );
        self.row(
            "upload",
            format!("{label} server bytes written to disk, scanning off"),
            written.to_string(),
            none(),
            none(),
        );
        self.row(
            "upload",
            format!("{label} server bytes written to disk, scanning on"),
            scan_written.to_string(),
            none(),
            none(),
        );
        let gib = (*size as f64 * rounds as f64) / GIB as f64;
        // clamd alone, fed as the server feeds it: how much of the scanned
        // upload's time is the verdict, which clamd gives only after the
        // last byte (it spools the stream, then scans it).
        let (streamed, verdict) = clamd_alone(&data.bytes).await;
        self.row(
            "upload",
            "clamd CPU per GiB scanned",
            format!("{:.1} s", clamd_cpu / gib),
            none(),
            none(),
        );
        self.row(
            "upload",
            "clamd bytes spooled to its disk per GiB",
            format!("{:.0} MiB", clamd_written as f64 / gib / MIB as f64),
            none(),
            none(),
        );
        self.row(
            "upload",
            format!("{label} to clamd alone: streamed / verdict after the last byte"),
            format!(
                "{:.2} s / {:.2} s",
                streamed.as_secs_f64(),
                verdict.as_secs_f64()
            ),
            none(),
            none(),
        );
        (r / d, sc / d)
    }

    async fn statements(&self) -> f64 {
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
            .find_map(|l| l.strip_prefix("reportfiles_sql_statements_total "))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    async fn exec(&self, sql: &str) {
        self.db.execute_unprepared(sql).await.unwrap();
    }

    /// Fills report_files to `total` synthetic rows spread over every STT,
    /// ten fiscal years, four quarters and four sections.
    async fn fill(&self, from: u64, total: u64) {
        let uploader = "(SELECT id FROM users ORDER BY id LIMIT 1)";
        self.exec(&format!(
            "INSERT INTO report_files (id, stt_id, fiscal_year, quarter, section, version, original_filename, \
             extension, content_type, size_bytes, sha256, object_key, uploaded_by_id, created_at) \
             SELECT gen_random_uuid(), 1 + g % 131, 2017 + (g / 131) % 10, 'Q' || (1 + (g / 1310) % 4), \
             (ARRAY['ACTIVE_CASE_DATA','CLOSED_CASE_DATA','AGGREGATE_DATA','STRATUM_DATA'])[1 + (g / 5240) % 4], \
             1000 + g / 20960, 'synthetic-' || g || '.txt', 'txt', 'text/plain', 100, repeat('0', 64), \
             'synthetic/' || g, {uploader}, now() \
             FROM generate_series({from}, {}) AS g",
            total - 1
        ))
        .await;
        self.exec("ANALYZE report_files").await;
    }

    async fn graphql(&mut self) -> (f64, f64) {
        // The queried STT and year get 500 versions (a state that resubmits
        // often); the rest of the rows spread evenly over everything else.
        self.exec(
            "INSERT INTO report_files (id, stt_id, fiscal_year, quarter, section, version, original_filename, \
             extension, content_type, size_bytes, sha256, object_key, uploaded_by_id, created_at) \
             SELECT gen_random_uuid(), 5, 2020, 'Q' || (1 + g % 4), 'AGGREGATE_DATA', 5000 + g, \
             'hot-' || g || '.txt', 'txt', 'text/plain', 100, repeat('0', 64), 'hot/' || g, \
             (SELECT id FROM users ORDER BY id LIMIT 1), now() FROM generate_series(0, 499) AS g",
        )
        .await;
        let mut p99s = Vec::new();
        let mut filled = 500;
        for (rows, label) in [(10_000u64, "10k rows"), (1_000_000, "1M rows")] {
            let rows = if self.quick { rows / 10 } else { rows };
            self.fill(filled, rows).await;
            filled = rows;
            // What autovacuum does after a bulk insert (PostgreSQL 13+
            // vacuums on inserts too): fresh planner statistics, and the
            // visibility map that lets counts scan the index only.
            self.exec("VACUUM ANALYZE report_files").await;
            self.exec("ANALYZE").await;
            let (rps, p50, p99, p99_spread, statements) = self.graphql_load().await;
            let label = if self.quick {
                format!("{label}/10")
            } else {
                label.to_string()
            };
            self.row(
                "graphql",
                format!("reportFiles(first: 50), {label}: requests/s at concurrency 8"),
                format!("{rps:.0}"),
                "-".into(),
                "-".into(),
            );
            self.row(
                "graphql",
                format!(
                    "reportFiles(first: 50), {label}: p50 / p99 (p99 of {GRAPHQL_ROUNDS} rounds)"
                ),
                format!(
                    "{p50:.2} / {p99:.2} ms ({:.1}-{:.1})",
                    p99_spread.0, p99_spread.1
                ),
                "-".into(),
                "-".into(),
            );
            self.row(
                "graphql",
                format!("reportFiles(first: 50), {label}: SQL statements per request"),
                format!("{statements:.2}"),
                "-".into(),
                "-".into(),
            );
            p99s.push(p99);
        }
        (p99s[0], p99s[1])
    }

    /// Medians over [`GRAPHQL_ROUNDS`] rounds of 4 s: (requests/s, p50 ms,
    /// p99 ms, (lowest, highest) p99 of a round, statements per request).
    async fn graphql_load(&self) -> (f64, f64, f64, (f64, f64), f64) {
        let query = json!({
            "query": "query($stt: Int!, $fy: Int!) { reportFiles(first: 50, filter: { sttId: $stt, fiscalYear: $fy }) { edges { node { id originalFilename stt { name } uploadedBy { email } } } } }",
            "variables": { "stt": 5, "fy": 2020 },
        })
        .to_string();
        let run = |secs: f64| {
            let query = query.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs_f64(secs);
                let workers = (0..8).map(|_| {
                    let query = query.clone();
                    async move {
                        let mut latencies = Vec::new();
                        while Instant::now() < deadline {
                            let started = Instant::now();
                            let res: Value = self
                                .http
                                .post(format!("{}/graphql", self.server))
                                .bearer_auth(&self.token)
                                .header("content-type", "application/json")
                                .body(query.clone())
                                .send()
                                .await
                                .unwrap()
                                .json()
                                .await
                                .unwrap();
                            latencies.push(started.elapsed().as_secs_f64() * 1e3);
                            let edges = res["data"]["reportFiles"]["edges"]
                                .as_array()
                                .map_or(0, |e| e.len());
                            assert_eq!(edges, 50, "{res}");
                        }
                        latencies
                    }
                });
                futures_util::future::join_all(workers).await.concat()
            }
        };
        run(1.0).await; // warm-up
        let before = self.statements().await;
        let (mut rps, mut p50, mut p99) = (Vec::new(), Vec::new(), Vec::new());
        let mut requests = 0;
        for _ in 0..GRAPHQL_ROUNDS {
            let started = Instant::now();
            let mut latencies = run(4.0).await;
            let elapsed = started.elapsed().as_secs_f64();
            requests += latencies.len();
            latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
            rps.push(latencies.len() as f64 / elapsed);
            p50.push(percentile(&latencies, 0.5));
            p99.push(percentile(&latencies, 0.99));
        }
        let statements = (self.statements().await - before) / requests as f64;
        let lowest = p99.iter().copied().fold(f64::INFINITY, f64::min);
        let highest = p99.iter().copied().fold(0.0, f64::max);
        (
            median(rps),
            median(p50),
            median(p99),
            (lowest, highest),
            statements,
        )
    }

    fn print_table(&self) {
        let w = [9, 62, 16, 16, 10];
        println!(
            "{:<w0$} | {:<w1$} | {:>w2$} | {:>w3$} | {:>w4$}",
            "section",
            "measure",
            "route",
            "direct S3",
            "ratio",
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3],
            w4 = w[4]
        );
        println!("{}", "-".repeat(w.iter().sum::<usize>() + 12));
        for r in &self.rows {
            println!(
                "{:<w0$} | {:<w1$} | {:>w2$} | {:>w3$} | {:>w4$}",
                r.section,
                r.measure,
                r.route,
                r.direct,
                r.ratio,
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3],
                w4 = w[4]
            );
        }
    }
}
