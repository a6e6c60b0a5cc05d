//! Compressed delivery: uploads get a compressed copy while they stream;
//! a client that prefers its coding gets it as a representation of its own
//! (length, ETag, ranges, 304), every other client the original bytes.
//! Refused uploads leave no copy, and the sweep counts copies as recorded.

use std::{io::Read, time::Duration};

use entity::report_file;

use crate::common::{
    ALABAMA, TestApp,
    clamd::{av_marker, clamd},
    error_codes, header, sha256_hex, storage_tests, upload_input, wait_until,
};

/// What Chromium sends.
const BROWSER: &str = "gzip, deflate, br, zstd";

/// A small deterministic generator: the files must be the same every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    fn digits(&mut self, out: &mut Vec<u8>, n: usize, zero_share: u64) {
        let zeros = self.below(100) < zero_share;
        for _ in 0..n {
            out.push(if zeros {
                b'0'
            } else {
                b'0' + self.below(10) as u8
            });
        }
    }
}

/// TANF-like text: 156-character Section 1 style records (record type,
/// month, case number, county, numeric fields often zero, blank padding).
fn tanf(len: usize) -> Vec<u8> {
    let mut r = Lcg(len as u64);
    let mut out = Vec::with_capacity(len + 160);
    let mut case = 100_000u64;
    while out.len() < len {
        case += 1 + r.below(9);
        let start = out.len();
        out.extend_from_slice([b"T1", b"T2", b"T3"][r.below(3) as usize]);
        out.extend_from_slice(format!("20260{}{case:011}", 1 + r.below(3)).as_bytes());
        out.extend_from_slice(format!("{:03}", 1 + 2 * r.below(40)).as_bytes());
        for _ in 0..12 {
            let width = 1 + r.below(4) as usize;
            r.digits(&mut out, width, 60);
        }
        out.resize(start + 156, b' ');
        out.push(b'\n');
    }
    out.truncate(len);
    out
}

/// Text from `alphabet` at random, in lines: `noise(b"..94 symbols..")`
/// saves under a fifth when compressed, a 32-symbol one over a third.
fn random_text(len: usize, alphabet: &[u8]) -> Vec<u8> {
    let mut r = Lcg(7 + len as u64);
    let mut out: Vec<u8> = (0..len)
        .map(|i| match i % 157 {
            156 => b'\n',
            _ => alphabet[r.below(alphabet.len() as u64) as usize],
        })
        .collect();
    // Not a magic number by chance.
    out[0] = b'T';
    out
}

fn printable() -> Vec<u8> {
    (b'!'..=b'~').collect()
}

const THIRTY_TWO: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

fn unzstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(bytes).expect("a valid zstd stream")
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a valid gzip stream");
    out
}

async fn row(app: &TestApp, id: uuid::Uuid) -> report_file::Model {
    app.report_files()
        .await
        .into_iter()
        .find(|r| r.id == id)
        .expect("the file's row")
}

async fn zstd_and_gzip_copies_decode_to_the_original(app: TestApp) {
    let app = app.with_vars(&[("UPLOAD_ENCODED_COPY", "zstd")]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let bytes = tanf(3 << 20);
    let f = app
        .upload_file(&token, ALABAMA, "ADS.E2J.NDM1.TS01", bytes.clone())
        .await;
    let res = app
        .download(&token, &f.url, &[("accept-encoding", BROWSER)])
        .await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "content-encoding"), Some("zstd"));
    let length: usize = header(&res, "content-length").unwrap().parse().unwrap();
    let body = res.bytes().await.unwrap();
    assert_eq!(body.len(), length, "Content-Length is the encoded size");
    assert!(length * 4 < bytes.len(), "TANF text compresses: {length}");
    assert_eq!(sha256_hex(&unzstd(&body)), sha256_hex(&bytes));
    assert_eq!(
        f.sha256,
        sha256_hex(&bytes),
        "the file's SHA-256 is the original's"
    );
    let r = row(&app, f.id).await;
    assert_eq!(r.content_encoding.as_deref(), Some("zstd"));
    assert_eq!(r.encoded_size_bytes, Some(length as i64));
    assert_eq!(r.size_bytes, bytes.len() as i64);

    let app = app.with_vars(&[("UPLOAD_ENCODED_COPY", "gzip:6")]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app
        .upload_file(&token, ALABAMA, "g.txt", bytes.clone())
        .await;
    let res = app
        .download(&token, &f.url, &[("accept-encoding", "gzip, deflate")])
        .await;
    assert_eq!(header(&res, "content-encoding"), Some("gzip"));
    assert_eq!(
        header(&res, "etag"),
        Some(format!("\"{}-gzip\"", f.sha256).as_str())
    );
    let body = res.bytes().await.unwrap();
    assert!(body.len() * 4 < bytes.len());
    assert_eq!(sha256_hex(&gunzip(&body)), sha256_hex(&bytes));
    // A client that takes only the other coding gets the original.
    let res = app
        .download(&token, &f.url, &[("accept-encoding", "zstd")])
        .await;
    assert_eq!(header(&res, "content-encoding"), None);
    assert!(res.bytes().await.unwrap() == bytes);
}

async fn the_encoded_representation_has_headers_of_its_own(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let bytes = tanf(200_000);
    let f = app
        .upload_file(&token, ALABAMA, "report.ts01", bytes.clone())
        .await;
    let encoded = app
        .download(&token, &f.url, &[("accept-encoding", BROWSER)])
        .await;
    let identity = app.download(&token, &f.url, &[]).await;
    assert_eq!(encoded.status().as_u16(), 200);
    assert_eq!(identity.status().as_u16(), 200);
    let encoded_etag = format!("\"{}-zstd\"", f.sha256);
    assert_eq!(header(&encoded, "etag"), Some(encoded_etag.as_str()));
    assert_eq!(
        header(&identity, "etag"),
        Some(format!("\"{}\"", f.sha256).as_str())
    );
    for res in [&encoded, &identity] {
        assert_eq!(header(res, "vary"), Some("accept-encoding"));
        assert_eq!(header(res, "content-type"), Some("text/plain"));
        assert_eq!(header(res, "accept-ranges"), Some("bytes"));
        assert_eq!(header(res, "cache-control"), Some("no-store"));
        assert_eq!(header(res, "x-content-type-options"), Some("nosniff"));
        assert_eq!(
            header(res, "content-disposition"),
            Some("attachment; filename=\"report.ts01\"; filename*=UTF-8''report.ts01")
        );
    }
    // Clients that do not ask get exactly the original, as before.
    assert_eq!(header(&identity, "content-encoding"), None);
    assert_eq!(
        header(&identity, "content-length"),
        Some(bytes.len().to_string().as_str())
    );
    assert!(identity.bytes().await.unwrap() == bytes);
    // Stable: the same ETag and bytes on a second request.
    let first = encoded.bytes().await.unwrap();
    let again = app
        .download(&token, &f.url, &[("accept-encoding", "zstd")])
        .await;
    assert_eq!(header(&again, "etag"), Some(encoded_etag.as_str()));
    assert_eq!(again.bytes().await.unwrap(), first);
    // Every byte sent is recorded, encoded ones as sent.
    let events = app.download_events(f.id, 3).await;
    let mut sent: Vec<i64> = events.iter().map(|e| e.bytes_sent).collect();
    sent.sort();
    assert_eq!(
        sent,
        [first.len() as i64, first.len() as i64, bytes.len() as i64]
    );
}

async fn ranges_and_resumes_are_on_the_encoded_bytes(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let bytes = tanf(500_000);
    let f = app
        .upload_file(&token, ALABAMA, "r.txt", bytes.clone())
        .await;
    let full = app
        .download(&token, &f.url, &[("accept-encoding", BROWSER)])
        .await;
    let etag = header(&full, "etag").unwrap().to_string();
    let full = full.bytes().await.unwrap();
    let n = full.len();

    // The first part, as a download cut short would have it.
    let res = app
        .download(
            &token,
            &f.url,
            &[("accept-encoding", BROWSER), ("range", "bytes=0-999")],
        )
        .await;
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(header(&res, "content-encoding"), Some("zstd"));
    assert_eq!(
        header(&res, "content-range"),
        Some(format!("bytes 0-999/{n}").as_str())
    );
    assert_eq!(header(&res, "content-length"), Some("1000"));
    let head = res.bytes().await.unwrap();
    assert_eq!(head, full.slice(..1000));

    // The resume, validated by the encoded ETag.
    let res = app
        .download(
            &token,
            &f.url,
            &[
                ("accept-encoding", BROWSER),
                ("range", "bytes=1000-"),
                ("if-range", &etag),
            ],
        )
        .await;
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(
        header(&res, "content-range"),
        Some(format!("bytes 1000-{}/{n}", n - 1).as_str())
    );
    let mut joined = head.to_vec();
    joined.extend_from_slice(&res.bytes().await.unwrap());
    assert_eq!(sha256_hex(&unzstd(&joined)), f.sha256);

    // The identity ETag does not validate a range of the encoded bytes: the
    // whole encoded representation instead.
    let res = app
        .download(
            &token,
            &f.url,
            &[
                ("accept-encoding", BROWSER),
                ("range", "bytes=1000-"),
                ("if-range", &format!("\"{}\"", f.sha256)),
            ],
        )
        .await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "content-encoding"), Some("zstd"));
    assert_eq!(res.bytes().await.unwrap(), full);

    // How Chromium resumes a download it received encoded: the original's
    // bytes from the length it saved (decoded), `identity`, and the copy's
    // ETag. The saved bytes are the original's: the range is honoured.
    let saved = bytes.len() / 3;
    let res = app
        .download(
            &token,
            &f.url,
            &[
                ("accept-encoding", "identity"),
                ("range", &format!("bytes={saved}-")),
                ("if-range", &etag),
            ],
        )
        .await;
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(header(&res, "content-encoding"), None);
    assert_eq!(
        header(&res, "content-range"),
        Some(format!("bytes {saved}-{}/{}", bytes.len() - 1, bytes.len()).as_str())
    );
    assert!(res.bytes().await.unwrap() == bytes[saved..]);

    // Both representations share Last-Modified: a date validates no range
    // of the encoded bytes (of the original, as always).
    let modified = app.download(&token, &f.url, &[]).await;
    let modified = header(&modified, "last-modified").unwrap().to_string();
    for (ae, status) in [(BROWSER, 200), ("identity", 206)] {
        let res = app
            .download(
                &token,
                &f.url,
                &[
                    ("accept-encoding", ae),
                    ("range", "bytes=1000-"),
                    ("if-range", &modified),
                ],
            )
            .await;
        assert_eq!(res.status().as_u16(), status, "{ae}");
    }

    // Past the encoded end (well inside the original): 416, of the copy.
    let past = format!("bytes={}-", n + 10);
    let res = app
        .download(
            &token,
            &f.url,
            &[("accept-encoding", BROWSER), ("range", &past)],
        )
        .await;
    assert_eq!(res.status().as_u16(), 416);
    assert_eq!(
        header(&res, "content-range"),
        Some(format!("bytes */{n}").as_str())
    );
    assert_eq!(header(&res, "vary"), Some("accept-encoding"));
    // The same range without Accept-Encoding is a range of the original.
    let res = app.download(&token, &f.url, &[("range", &past)]).await;
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(header(&res, "content-encoding"), None);
}

async fn conditional_requests_compare_the_representation_sent(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app
        .upload_file(&token, ALABAMA, "c.txt", tanf(100_000))
        .await;
    let encoded = format!("\"{}-zstd\"", f.sha256);
    let res = app
        .download(
            &token,
            &f.url,
            &[("accept-encoding", BROWSER), ("if-none-match", &encoded)],
        )
        .await;
    assert_eq!(res.status().as_u16(), 304);
    assert_eq!(header(&res, "etag"), Some(encoded.as_str()));
    assert_eq!(header(&res, "vary"), Some("accept-encoding"));
    assert!(res.bytes().await.unwrap().is_empty());
    // The encoded ETag is not the original's: a plain client gets the file.
    let res = app
        .download(&token, &f.url, &[("if-none-match", &encoded)])
        .await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "content-encoding"), None);
    // Nor the other way round.
    let res = app
        .download(
            &token,
            &f.url,
            &[
                ("accept-encoding", "zstd"),
                ("if-none-match", &format!("\"{}\"", f.sha256)),
            ],
        )
        .await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "content-encoding"), Some("zstd"));
}

async fn accept_encoding_is_read_with_its_weights(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app
        .upload_file(&token, ALABAMA, "q.txt", tanf(100_000))
        .await;
    let cases: &[(&str, Option<&str>)] = &[
        ("identity;q=0, zstd", Some("zstd")),
        ("*", Some("zstd")),
        ("zstd;q=0.5, identity;q=0.4", Some("zstd")),
        ("ZSTD", Some("zstd")),
        ("zstd;q=0", None),
        ("zstd;q=0.5, identity", None),
        ("*;q=0", None),
        ("gzip", None),
        ("identity", None),
        ("", None),
        // Malformed: as if not said.
        ("zstd;q=2", None),
        ("zstd;q=0.5x", None),
        ("zst d", None),
        // Nothing else is acceptable, yet the original is still better than
        // nothing: a download is never refused over its coding.
        ("identity;q=0", None),
    ];
    for (value, coding) in cases {
        let res = app
            .download(&token, &f.url, &[("accept-encoding", value)])
            .await;
        assert_eq!(res.status().as_u16(), 200, "{value}");
        assert_eq!(header(&res, "content-encoding"), *coding, "{value}");
        assert_eq!(header(&res, "vary"), Some("accept-encoding"), "{value}");
        let body = res.bytes().await.unwrap();
        let decoded = match coding {
            Some(_) => unzstd(&body),
            None => body.to_vec(),
        };
        assert_eq!(sha256_hex(&decoded), f.sha256, "{value}");
    }
    // A hostile list is read only so far, and answers quickly.
    // (Under the 16 KiB limit on a request head, past which it is a 431.)
    let huge = vec!["x-junk;q=0.001"; 900].join(",");
    let res = app
        .download(
            &token,
            &f.url,
            &[("accept-encoding", &format!("{huge},zstd"))],
        )
        .await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "content-encoding"), None);
}

async fn files_that_compress_too_little_are_sent_as_they_are(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    for (name, bytes) in [
        ("noise.txt", random_text(300_000, &printable())),
        ("tiny.txt", b"T1 hello\n".to_vec()),
    ] {
        let f = app.upload_file(&token, ALABAMA, name, bytes.clone()).await;
        let r = row(&app, f.id).await;
        assert_eq!(r.content_encoding, None, "{name}");
        assert_eq!(r.encoded_object_key, None, "{name}");
        let res = app
            .download(&token, &f.url, &[("accept-encoding", BROWSER)])
            .await;
        assert_eq!(header(&res, "content-encoding"), None, "{name}");
        assert_eq!(header(&res, "vary"), Some("accept-encoding"), "{name}");
        assert_eq!(
            header(&res, "etag"),
            Some(format!("\"{}\"", f.sha256).as_str())
        );
        assert!(res.bytes().await.unwrap() == bytes, "{name}");
    }
    assert_eq!(app.objects().await.len(), 2, "no copies were kept");
}

async fn head_gives_the_encoded_headers_without_a_body(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app
        .upload_file(&token, ALABAMA, "h.txt", tanf(100_000))
        .await;
    let size = row(&app, f.id).await.encoded_size_bytes.unwrap();
    let res = app
        .client
        .head(app.url(&f.url))
        .bearer_auth(&token)
        .header("accept-encoding", BROWSER)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "content-encoding"), Some("zstd"));
    assert_eq!(
        header(&res, "content-length"),
        Some(size.to_string().as_str())
    );
    assert_eq!(header(&res, "vary"), Some("accept-encoding"));
    assert!(res.bytes().await.unwrap().is_empty());
    assert!(
        app.download_events_now(f.id).await.is_empty(),
        "HEAD is not a download"
    );
}

/// Nothing of a refused upload, copy included: no row, no object, no
/// multipart upload.
async fn nothing_left(app: &TestApp, why: &str) {
    app.assert_nothing_stored(why).await;
    wait_until(Duration::from_secs(10), why, async || {
        app.incomplete_uploads().await.is_empty()
    })
    .await;
}

/// Text whose copy outgrows a 5 MiB part before the upload is refused:
/// the copy is a multipart upload of its own by then.
fn big_copy_text(len: usize) -> Vec<u8> {
    random_text(len, THIRTY_TWO)
}

async fn a_refused_upload_leaves_no_copy(app: TestApp) {
    let app = app
        .with_vars(&[
            ("MAX_UPLOAD_BYTES", "10MiB"),
            ("UPLOAD_PART_SIZE_BYTES", "5MiB"),
        ])
        .await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let (_, body) = app
        .upload(
            Some(&token),
            upload_input(ALABAMA),
            "big.txt",
            // One byte over: refused at the very end, once the copy has
            // sent its first part (a declared length far over the limit
            // would be refused before a byte is read).
            big_copy_text((10 << 20) + 1),
        )
        .await;
    assert_eq!(error_codes(&body), ["PAYLOAD_TOO_LARGE"], "{body}");
    nothing_left(&app, "an upload over the limit").await;
    // The same text under the limit is stored, its copy in two parts.
    let bytes = big_copy_text(10 << 20);
    let f = app.upload_file(&token, ALABAMA, "ok.txt", bytes).await;
    let r = row(&app, f.id).await;
    assert!(r.encoded_size_bytes.unwrap() > 5 << 20, "{r:?}");
    let res = app
        .download(&token, &f.url, &[("accept-encoding", BROWSER)])
        .await;
    assert_eq!(sha256_hex(&unzstd(&res.bytes().await.unwrap())), f.sha256);
    app.assert_reconciled("a stored upload and its copy").await;
}

async fn an_infected_upload_leaves_no_copy(app: TestApp) {
    let app = app
        .with_vars(&[
            ("AV_SCAN", "required"),
            ("CLAMD_ADDR", &clamd().to_string()),
            ("UPLOAD_PART_SIZE_BYTES", "5MiB"),
        ])
        .await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let mut bytes = big_copy_text(9 << 20);
    let middle = 157 * 20_000;
    bytes.splice(middle..middle, format!("{}\n", av_marker()).into_bytes());
    let (_, body) = app
        .upload(Some(&token), upload_input(ALABAMA), "v.txt", bytes)
        .await;
    assert_eq!(error_codes(&body), ["VIRUS_DETECTED"], "{body}");
    nothing_left(&app, "an infected upload").await;
}

async fn the_sweep_counts_copies_as_recorded(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app
        .upload_file(&token, ALABAMA, "kept.txt", tanf(100_000))
        .await;
    let r = row(&app, f.id).await;
    let copy = r.encoded_object_key.clone().unwrap();
    let orphan = format!("report-files/{}.zst", uuid::Uuid::new_v4());
    app.put_object(&orphan, b"a copy without a row").await;
    let out = sweep(&app, &["--older-than", "0s"]);
    assert!(
        out.contains(&format!("object without a row: {orphan}")),
        "{out}"
    );
    assert!(!out.contains(&copy), "the copy is recorded: {out}");
    app.assert_reconciled("after the sweep").await;
    let res = app
        .download(&token, &f.url, &[("accept-encoding", BROWSER)])
        .await;
    assert_eq!(header(&res, "content-encoding"), Some("zstd"));
    assert_eq!(sha256_hex(&unzstd(&res.bytes().await.unwrap())), f.sha256);
    // A plain delete of the copy: in a versioned bucket only a delete
    // marker, and the recorded version is still there and served; in a
    // folder the copy is gone, and its row is reported (never deleted).
    app.delete_object(&copy).await;
    let out = sweep(&app, &["--older-than", "0s", "--dry-run"]);
    let reported = format!("row without an object: report file {} ({copy}", f.id);
    if app.stores_in_s3() {
        assert!(!out.contains(&reported), "{out}");
        let res = app
            .download(&token, &f.url, &[("accept-encoding", BROWSER)])
            .await;
        assert_eq!(sha256_hex(&unzstd(&res.bytes().await.unwrap())), f.sha256);
    } else {
        assert!(out.contains(&reported), "{out}");
    }
}

fn sweep(app: &TestApp, args: &[&str]) -> String {
    let out = app.cli(&[&["storage", "sweep"], args].concat());
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn copies_can_be_turned_off(app: TestApp) {
    let app = app.with_vars(&[("UPLOAD_ENCODED_COPY", "off")]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app
        .upload_file(&token, ALABAMA, "off.txt", tanf(100_000))
        .await;
    let res = app
        .download(&token, &f.url, &[("accept-encoding", BROWSER)])
        .await;
    assert_eq!(header(&res, "content-encoding"), None);
    assert_eq!(app.objects().await.len(), 1);
}

storage_tests!(
    zstd_and_gzip_copies_decode_to_the_original,
    the_encoded_representation_has_headers_of_its_own,
    ranges_and_resumes_are_on_the_encoded_bytes,
    conditional_requests_compare_the_representation_sent,
    accept_encoding_is_read_with_its_weights,
    files_that_compress_too_little_are_sent_as_they_are,
    head_gives_the_encoded_headers_without_a_body,
    a_refused_upload_leaves_no_copy,
    an_infected_upload_leaves_no_copy,
    the_sweep_counts_copies_as_recorded,
    copies_can_be_turned_off,
);
