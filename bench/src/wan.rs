//! `rf-bench wan`: a TANF-like file over a shaped link (bench/wan). The
//! script puts the client in a network namespace of its own, joined to the
//! host by a veth pair shaped with `tbf` in both directions, and runs
//! `rf-bench wan prepare` on the host (upload, object key), then
//! `rf-bench wan measure` inside the namespace: three ways to get the same
//! file, alternating, each body's SHA-256 checked after decoding.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use object_store::{path::Path, signer::Signer};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{MIB, RssPeak, hex, median, rss_kib, s3, var};

pub async fn run(phase: Option<&str>) {
    match phase {
        Some("prepare") => prepare().await,
        Some("measure") => measure().await,
        Some("codecs") => codecs(),
        Some("uploads") => uploads().await,
        _ => panic!("usage: rf-bench wan prepare|measure|codecs|uploads (run bench/wan)"),
    }
}

/// A small deterministic generator: the file is the same every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    /// `width` digits, up to `max`, or zeros with `zero_percent` chance
    /// (most amounts in these records are zero).
    fn num(&mut self, out: &mut Vec<u8>, width: usize, max: u64, zero_percent: u64) {
        let n = if self.below(100) < zero_percent {
            0
        } else {
            self.below(max + 1)
        };
        out.extend_from_slice(format!("{n:0width$}").as_bytes());
    }

    fn pick(&mut self, out: &mut Vec<u8>, choices: &[&str]) {
        out.extend_from_slice(choices[self.below(choices.len() as u64) as usize].as_bytes());
    }
}

/// TANF Section 1 style text: per case, one T1 family record, one or two
/// T2 adult records and up to two T3 child records, each 156 characters
/// (fields of digits, codes and flags, blank padding) and a newline.
pub fn tanf(len: usize) -> Vec<u8> {
    let mut r = Lcg(0x7a4f);
    let counties: Vec<String> = (0..30).map(|i| format!("{:03}", 1 + i * 6)).collect();
    let zips: Vec<String> = (0..80).map(|i| format!("{:05}", 35004 + i * 23)).collect();
    let mut out = Vec::with_capacity(len + 1024);
    let mut case = 100_000u64;
    while out.len() < len {
        let month = format!("20260{}", 1 + r.below(3));
        case += 1 + r.below(9);
        let case_no = format!("{case:011}");
        let mut record = |r: &mut Lcg, kind: u8| {
            let start = out.len();
            out.extend_from_slice(format!("T{kind}{month}{case_no}").as_bytes());
            match kind {
                1 => {
                    let c = r.below(30) as usize;
                    out.extend_from_slice(counties[c].as_bytes());
                    out.extend_from_slice(b"  ");
                    let z = r.below(80) as usize;
                    out.extend_from_slice(zips[z].as_bytes());
                    out.extend_from_slice(b"11");
                    r.pick(&mut out, &["1", "2"]);
                    r.num(&mut out, 2, 6, 0);
                    r.pick(&mut out, &["1", "2", "3"]);
                    r.pick(&mut out, &["1", "2"]);
                    out.push(b'1');
                    r.pick(&mut out, &["1", "2"]);
                    r.num(&mut out, 4, 800, 30);
                    r.pick(&mut out, &["1", "2"]);
                    for (max, zero) in [(600, 80), (300, 70), (2000, 50), (900, 0)] {
                        r.num(&mut out, 4, max, zero);
                    }
                    r.num(&mut out, 3, 60, 0);
                    out.extend_from_slice(b"0000000000000");
                    r.num(&mut out, 4, 200, 90);
                    out.extend_from_slice(b"22222200000000222902 2");
                }
                2 => {
                    out.extend_from_slice(b"12");
                    out.extend_from_slice(format!("{}", 1960 + r.below(45)).as_bytes());
                    r.num(&mut out, 2, 11, 0);
                    r.num(&mut out, 2, 27, 0);
                    r.num(&mut out, 9, 899_999_999, 0);
                    for _ in 0..7 {
                        r.pick(&mut out, &["1", "2"]);
                    }
                    out.extend_from_slice(b"22222");
                    r.pick(&mut out, &["1", "2", "3", "4", "5"]);
                    out.extend_from_slice(b"01");
                    r.pick(&mut out, &["1", "2", "3"]);
                    out.push(b'2');
                    r.pick(&mut out, &["08", "09", "10", "11", "12", "13", "14", "16"]);
                    out.push(b'1');
                    r.pick(&mut out, &["1", "2", "9"]);
                    r.num(&mut out, 3, 60, 0);
                    out.extend_from_slice(b"00");
                    r.pick(&mut out, &["1", "2", "3"]);
                    r.pick(&mut out, &["01", "02", "03", "04"]);
                    r.pick(
                        &mut out,
                        &["01", "02", "05", "06", "07", "08", "09", "10", "11", "12"],
                    );
                    r.num(&mut out, 2, 40, 60);
                    out.extend_from_slice(&[b'0'; 28]);
                    r.num(&mut out, 4, 2000, 60);
                    r.num(&mut out, 4, 600, 85);
                    out.extend_from_slice(b"0000");
                    r.num(&mut out, 4, 400, 90);
                    out.extend_from_slice(b"00000000");
                }
                _ => {
                    for _ in 0..2 {
                        out.push(b'1');
                        out.extend_from_slice(format!("{}", 2007 + r.below(19)).as_bytes());
                        r.num(&mut out, 2, 11, 0);
                        r.num(&mut out, 2, 27, 0);
                        r.num(&mut out, 9, 899_999_999, 0);
                        for _ in 0..7 {
                            r.pick(&mut out, &["1", "2"]);
                        }
                        out.extend_from_slice(b"22");
                        r.pick(&mut out, &["03", "04", "05", "06"]);
                        out.push(b'2');
                        r.num(&mut out, 2, 12, 0);
                        out.push(b'1');
                        r.num(&mut out, 4, 300, 80);
                        out.extend_from_slice(b"0000");
                    }
                }
            }
            out.resize(start + 156, b' ');
            out.push(b'\n');
        };
        record(&mut r, 1);
        for _ in 0..1 + r.below(2) {
            record(&mut r, 2);
        }
        for _ in 0..r.below(3) {
            record(&mut r, 3);
        }
    }
    out.truncate(len);
    out
}

/// The compressors the server can keep copies with, on the benchmark's
/// file, one core: ratio and speed, fed 1 MiB at a time as an upload is.
fn codecs() {
    let size: usize = std::env::var("WAN_MIB").map_or(64, |v| v.parse().unwrap()) * MIB;
    let data = tanf(size);
    println!("{} MiB TANF-like text, one core", size / MIB);
    println!(
        "{:<8} | {:>6} | {:>8} | {:>12}",
        "coding", "ratio", "MiB/s", "decode MiB/s"
    );
    for (name, level) in [
        ("zstd", 1),
        ("zstd", 3),
        ("zstd", 6),
        ("gzip", 1),
        ("gzip", 3),
        ("gzip", 6),
        ("gzip", 9),
    ] {
        let started = Instant::now();
        let encoded = match name {
            "zstd" => {
                let mut e = zstd::stream::write::Encoder::new(Vec::new(), level).unwrap();
                e.include_checksum(true).unwrap();
                for chunk in data.chunks(MIB) {
                    e.write_all(chunk).unwrap();
                }
                e.finish().unwrap()
            }
            _ => {
                let mut e = flate2::write::GzEncoder::new(
                    Vec::new(),
                    flate2::Compression::new(level as u32),
                );
                for chunk in data.chunks(MIB) {
                    e.write_all(chunk).unwrap();
                }
                e.finish().unwrap()
            }
        };
        let secs = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let mut sink = Sink::new(Some(name));
        for chunk in encoded.chunks(MIB) {
            sink.write(chunk);
        }
        let (sha, _) = sink.finish();
        let decode = started.elapsed().as_secs_f64();
        assert_eq!(sha, hex(&Sha256::digest(&data)));
        println!(
            "{:<8} | {:>6.2} | {:>8.0} | {:>12.0}",
            format!("{name} -{level}"),
            size as f64 / encoded.len() as f64,
            size as f64 / MIB as f64 / secs,
            size as f64 / MIB as f64 / decode
        );
    }
}

/// Uploads `data` through the route (on the host's side of the link): the
/// file's id, and how long the upload took.
async fn upload(data: Vec<u8>, name: &str) -> (String, Duration) {
    let (server, token) = (var("BENCH_SERVER"), var("BENCH_TOKEN"));
    super::upload(&reqwest::Client::new(), &server, &token, &data.into(), name).await
}

/// On the host: the TANF-like file uploaded through the route (compressed
/// copy and all) and as a direct S3 multipart PUT (8 MiB parts, 2 in
/// flight, as the server sends the original), alternating; the server's
/// peak RSS growth during the route's uploads.
async fn uploads() {
    let size: usize = std::env::var("WAN_UPLOAD_MIB").map_or(256, |v| v.parse().unwrap()) * MIB;
    let pid: u32 = var("BENCH_PID").parse().unwrap();
    let data = tanf(size);
    let s3 = s3();
    let (mut route, mut direct, mut growth) = (Vec::new(), Vec::new(), 0u64);
    for i in 0..3 {
        let idle = rss_kib(pid);
        let sampler = RssPeak::start(pid);
        let (_, took) = upload(data.clone(), "upload.ts01").await;
        growth = growth.max(sampler.finish().saturating_sub(idle));
        route.push(size as f64 / took.as_secs_f64());

        let bytes = bytes::Bytes::from(data.clone());
        let started = Instant::now();
        let put = object_store::ObjectStoreExt::put_multipart(
            &s3,
            &Path::from(format!("bench-direct/{i}")),
        )
        .await
        .unwrap();
        let mut w = object_store::WriteMultipart::new_with_chunk_size(put, 8 * MIB);
        for off in (0..size).step_by(MIB) {
            w.wait_for_capacity(2).await.unwrap();
            w.put(bytes.slice(off..(off + MIB).min(size)));
        }
        w.finish().await.unwrap();
        direct.push(size as f64 / started.elapsed().as_secs_f64());
    }
    let (r, d) = (median(route), median(direct));
    println!(
        "upload of {} MiB TANF-like text, median of 3: route {:.0} MB/s, direct multipart PUT {:.0} MB/s, ratio {:.2}; server peak RSS growth {:.1} MiB",
        size / MIB,
        r / 1e6,
        d / 1e6,
        r / d,
        growth as f64 / 1024.0
    );
}

/// On the host: uploads the file through the route and prints what the
/// measuring side needs, as `export` lines for the script.
async fn prepare() {
    let size: usize = std::env::var("WAN_MIB").map_or(64, |v| v.parse().unwrap()) * MIB;
    let data = tanf(size);
    let sha = hex(&Sha256::digest(&data));
    let (id, took) = upload(data, "ADS.E2J.NDM1.TS01").await;
    eprintln!("uploaded {} MiB in {took:.2?}", size / MIB);
    let db = Database::connect(var("DATABASE_URL")).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT object_key, encoded_size_bytes, content_encoding FROM report_files WHERE id = '{id}'"
            ),
        ))
        .await
        .unwrap()
        .unwrap();
    let key: String = row.try_get("", "object_key").unwrap();
    let encoded: Option<i64> = row.try_get("", "encoded_size_bytes").unwrap();
    let coding: Option<String> = row.try_get("", "content_encoding").unwrap();
    eprintln!(
        "stored {} bytes; copy: {} bytes {} (ratio {:.2})",
        size,
        encoded.unwrap_or(0),
        coding.as_deref().unwrap_or("none"),
        size as f64 / encoded.unwrap_or(size as i64) as f64
    );
    println!("export WAN_ID={id} WAN_KEY={key} WAN_SHA={sha} WAN_SIZE={size}");
}

/// Hashes what is written to it: the end of a decoder.
struct Hashing(Sha256, u64);

impl Write for Hashing {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        self.1 += b.len() as u64;
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The body's decoder, by its `Content-Encoding`.
enum Sink {
    Identity(Hashing),
    Zstd(zstd::stream::write::Decoder<'static, Hashing>),
    Gzip(Box<flate2::write::GzDecoder<Hashing>>),
}

impl Sink {
    fn new(coding: Option<&str>) -> Sink {
        let h = Hashing(Sha256::new(), 0);
        match coding {
            None => Sink::Identity(h),
            Some("zstd") => Sink::Zstd(zstd::stream::write::Decoder::new(h).unwrap()),
            Some("gzip") => Sink::Gzip(Box::new(flate2::write::GzDecoder::new(h))),
            Some(other) => panic!("unexpected Content-Encoding {other}"),
        }
    }

    fn write(&mut self, b: &[u8]) {
        match self {
            Sink::Identity(h) => h.write_all(b),
            Sink::Zstd(d) => d.write_all(b),
            Sink::Gzip(d) => d.write_all(b),
        }
        .unwrap()
    }

    /// The SHA-256 and length of the decoded body.
    fn finish(self) -> (String, u64) {
        let h = match self {
            Sink::Identity(h) => h,
            Sink::Zstd(mut d) => {
                d.flush().unwrap();
                d.into_inner()
            }
            Sink::Gzip(d) => d.finish().unwrap(),
        };
        (hex(&h.0.finalize()), h.1)
    }
}

/// Bytes received and sent by the namespace's interface, headers and TCP
/// included: what crossed the shaped link.
fn wire_bytes(dev: &str) -> u64 {
    let table = std::fs::read_to_string("/proc/net/dev").unwrap();
    let line = table
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{dev}:")))
        .unwrap_or_else(|| panic!("{dev} not in /proc/net/dev: run through bench/wan"));
    let fields: Vec<u64> = line
        .split_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    fields[0] + fields[8]
}

#[derive(Clone, Copy, PartialEq)]
enum Way {
    Presigned,
    Identity,
    Compressed,
}

impl Way {
    fn label(self) -> &'static str {
        match self {
            Way::Presigned => "pre-signed (GraphQL + S3 GET)",
            Way::Identity => "route, no Accept-Encoding",
            Way::Compressed => "route, Accept-Encoding: gzip, zstd",
        }
    }
}

struct Measured {
    seconds: f64,
    wire: u64,
    body: u64,
}

struct Client {
    server: String,
    token: String,
    id: String,
    key: String,
    sha: String,
    size: u64,
    dev: String,
    s3: object_store::aws::AmazonS3,
}

impl Client {
    async fn get(&self, way: Way) -> Measured {
        // A connection of its own each time, as a browser opening a link
        // to another host would have.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let before = wire_bytes(&self.dev);
        let started = Instant::now();
        let req = match way {
            Way::Presigned => {
                let query = json!({
                    "query": "query($id: ID!) { reportFile(id: $id) { id sha256 sizeBytes } }",
                    "variables": { "id": self.id }
                });
                let res: Value = http
                    .post(format!("{}/graphql", self.server))
                    .bearer_auth(&self.token)
                    .json(&query)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(res["data"]["reportFile"]["sha256"], self.sha, "{res}");
                // What the pre-signed design's server would answer: a URL
                // signed for this object, valid for a while.
                let url = self
                    .s3
                    .signed_url(
                        reqwest::Method::GET,
                        &Path::from(self.key.as_str()),
                        Duration::from_secs(300),
                    )
                    .await
                    .unwrap();
                http.get(url.to_string())
            }
            Way::Identity => http
                .get(format!(
                    "{}/v1/report-files/{}/download",
                    self.server, self.id
                ))
                .bearer_auth(&self.token),
            Way::Compressed => http
                .get(format!(
                    "{}/v1/report-files/{}/download",
                    self.server, self.id
                ))
                .bearer_auth(&self.token)
                .header("accept-encoding", "gzip, zstd"),
        };
        let res = req.send().await.unwrap();
        assert!(res.status().is_success(), "{}", res.status());
        let coding = res
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(
            coding.is_some(),
            way == Way::Compressed,
            "{}: Content-Encoding {coding:?}",
            way.label()
        );
        let mut sink = Sink::new(coding.as_deref());
        let mut body = 0u64;
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            body += chunk.len() as u64;
            sink.write(&chunk);
        }
        let seconds = started.elapsed().as_secs_f64();
        let (sha, decoded) = sink.finish();
        assert_eq!(
            sha,
            self.sha,
            "{}: SHA-256 of the decoded body",
            way.label()
        );
        assert_eq!(decoded, self.size);
        Measured {
            seconds,
            wire: wire_bytes(&self.dev) - before,
            body,
        }
    }
}

/// In the namespace: every way, alternating, `WAN_ROUNDS` rounds after one
/// unmeasured warm-up of each.
async fn measure() {
    // Only signs here: the pre-signed GETs go through `reqwest`.
    let s3 = s3();
    let client = Client {
        server: var("BENCH_SERVER"),
        token: var("BENCH_TOKEN"),
        id: var("WAN_ID"),
        key: var("WAN_KEY"),
        sha: var("WAN_SHA"),
        size: var("WAN_SIZE").parse().unwrap(),
        dev: var("WAN_DEV"),
        s3,
    };
    let rounds: usize = std::env::var("WAN_ROUNDS").map_or(5, |v| v.parse().unwrap());
    let ways = [Way::Presigned, Way::Identity, Way::Compressed];
    for way in ways {
        client.get(way).await;
    }
    let mut results: Vec<Vec<Measured>> = ways.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        // Alternating, and the order turns each round: no way always
        // follows the same one.
        for i in 0..ways.len() {
            let w = (i + round) % ways.len();
            let m = client.get(ways[w]).await;
            eprintln!(
                "round {}: {:<36} {:>7.2} s {:>11} bytes on the wire",
                round + 1,
                ways[w].label(),
                m.seconds,
                m.wire
            );
            results[w].push(m);
        }
    }
    let presigned = median(results[0].iter().map(|m| m.seconds).collect());
    println!(
        "{} MiB TANF-like file, {rounds} rounds, link {}",
        client.size / MIB as u64,
        var("WAN_RATE")
    );
    println!(
        "{:<36} | {:>10} | {:>13} | {:>13} | {:>16} | {:>14}",
        "way", "median s", "min-max s", "body bytes", "bytes on wire", "vs pre-signed"
    );
    println!("{}", "-".repeat(118));
    for (way, ms) in ways.iter().zip(&results) {
        let secs: Vec<f64> = ms.iter().map(|m| m.seconds).collect();
        let min = secs.iter().cloned().fold(f64::MAX, f64::min);
        let max = secs.iter().cloned().fold(0.0, f64::max);
        let med = median(secs);
        let wire = median(ms.iter().map(|m| m.wire as f64).collect());
        println!(
            "{:<36} | {:>10.2} | {:>13} | {:>13} | {:>16.0} | {:>13.2}x",
            way.label(),
            med,
            format!("{min:.2}-{max:.2}"),
            ms[0].body,
            wire,
            presigned / med
        );
    }
}
