//! The S3 calls object_store has no API for: deleting one version of an
//! object, listing versions and incomplete multipart uploads, aborting an
//! upload found by such a listing. Each is a short-lived URL signed here with
//! the store's own credentials and sent at once from here: it never leaves
//! the server.

use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::{
    aws::AmazonS3,
    path::Path,
    signer::{Method, SignedUrlOptions, Signer},
};
use serde::Deserialize;

use super::ToolError;
use crate::config::StorageConfig;

/// A signed URL is sent right away: it needs to live only that long.
const URL_LIFETIME: Duration = Duration::from_secs(60);

/// How many pages a listing may have: a guard against a server that keeps
/// answering "truncated" with the same marker.
const MAX_PAGES: usize = 100_000;

/// One version of an object, or a delete marker, as a listing gives it.
#[derive(Debug, Clone)]
pub(super) struct ListedVersion {
    pub key: String,
    pub version_id: String,
    pub delete_marker: bool,
    pub last_modified: DateTime<Utc>,
}

/// An incomplete multipart upload, as a listing gives it.
#[derive(Debug, Clone)]
pub(super) struct ListedUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: DateTime<Utc>,
}

pub(super) struct SignedS3 {
    s3: AmazonS3,
    /// The store's key prefix, without slashes at either end.
    prefix: Option<String>,
    http: s3_http::Client,
}

impl SignedS3 {
    pub fn new(
        s3: AmazonS3,
        prefix: Option<String>,
        cfg: &StorageConfig,
    ) -> Result<Self, ToolError> {
        // These answers are small (at most a page of a listing): a total
        // timeout is right here, unlike for object bodies.
        let http = s3_http::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.read_timeout)
            .build()?;
        Ok(SignedS3 { s3, prefix, http })
    }

    /// The bucket's key for one of the store's keys.
    fn full_key(&self, key: &str) -> String {
        match &self.prefix {
            Some(p) => format!("{p}/{key}"),
            None => key.to_string(),
        }
    }

    /// The store's key for one of the bucket's, if it is under the prefix.
    fn store_key<'k>(&self, full: &'k str) -> Option<&'k str> {
        match &self.prefix {
            Some(p) => full.strip_prefix(p.as_str())?.strip_prefix('/'),
            None => Some(full),
        }
    }

    /// Signs and sends one request; the answer's body, or an error with the
    /// status and what the server said. `path` is the full key, or empty for
    /// the bucket itself.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<(u16, String), ToolError> {
        let options = SignedUrlOptions::default().with_query(query.iter().copied());
        let url = self
            .s3
            .signed_url_opts(method.clone(), &Path::from(path), URL_LIFETIME, &options)
            .await?;
        let res = self.http.request(method.clone(), url).send().await?;
        let status = res.status();
        let body = res.text().await?;
        if status.is_success() || status == s3_http::StatusCode::NOT_FOUND {
            return Ok((status.as_u16(), body));
        }
        Err(format!(
            "S3 answered {status} to {method} {path}: {}",
            body.chars().take(300).collect::<String>()
        )
        .into())
    }

    /// Deletes exactly `version` of `key`. Already gone is done.
    pub async fn delete_version(&self, key: &str, version: &str) -> Result<(), ToolError> {
        self.send(
            Method::DELETE,
            &self.full_key(key),
            &[("versionId", version)],
        )
        .await
        .map(drop)
    }

    /// Aborts the multipart upload `upload_id` of `key`. Already gone is done.
    pub async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), ToolError> {
        self.send(
            Method::DELETE,
            &self.full_key(key),
            &[("uploadId", upload_id)],
        )
        .await
        .map(drop)
    }

    /// Every version and delete marker under `prefix` (a store key prefix).
    pub async fn list_versions(&self, prefix: &str) -> Result<Vec<ListedVersion>, ToolError> {
        let full_prefix = self.full_key(prefix);
        let mut found = Vec::new();
        let (mut key_marker, mut version_marker) = (String::new(), String::new());
        for _ in 0..MAX_PAGES {
            let mut query = vec![("versions", ""), ("prefix", full_prefix.as_str())];
            if !key_marker.is_empty() {
                query.push(("key-marker", &key_marker));
                query.push(("version-id-marker", &version_marker));
            }
            let page: ListVersionsResult = self.list_page(&query).await?;
            for (v, delete_marker) in page
                .versions
                .into_iter()
                .map(|v| (v, false))
                .chain(page.delete_markers.into_iter().map(|v| (v, true)))
            {
                if let Some(key) = self.store_key(&v.key) {
                    found.push(ListedVersion {
                        key: key.to_string(),
                        version_id: v.version_id,
                        delete_marker,
                        last_modified: v.last_modified,
                    });
                }
            }
            if !page.is_truncated {
                return Ok(found);
            }
            (key_marker, version_marker) = next_markers(
                page.next_key_marker,
                page.next_version_id_marker,
                &key_marker,
                &version_marker,
            )?;
        }
        Err("the version listing did not end".into())
    }

    /// Every incomplete multipart upload under `prefix` (a store key prefix).
    pub async fn list_uploads(&self, prefix: &str) -> Result<Vec<ListedUpload>, ToolError> {
        let full_prefix = self.full_key(prefix);
        let mut found = Vec::new();
        let (mut key_marker, mut upload_marker) = (String::new(), String::new());
        for _ in 0..MAX_PAGES {
            let mut query = vec![("uploads", ""), ("prefix", full_prefix.as_str())];
            if !key_marker.is_empty() {
                query.push(("key-marker", &key_marker));
                query.push(("upload-id-marker", &upload_marker));
            }
            let page: ListUploadsResult = self.list_page(&query).await?;
            for u in page.uploads {
                if let Some(key) = self.store_key(&u.key) {
                    found.push(ListedUpload {
                        key: key.to_string(),
                        upload_id: u.upload_id,
                        initiated: u.initiated,
                    });
                }
            }
            if !page.is_truncated {
                return Ok(found);
            }
            (key_marker, upload_marker) = next_markers(
                page.next_key_marker,
                page.next_upload_id_marker,
                &key_marker,
                &upload_marker,
            )?;
        }
        Err("the upload listing did not end".into())
    }

    /// One page of a bucket listing, parsed.
    async fn list_page<T: for<'de> Deserialize<'de>>(
        &self,
        query: &[(&str, &str)],
    ) -> Result<T, ToolError> {
        let (status, body) = self.send(Method::GET, "", query).await?;
        if status == 404 {
            return Err(format!("the bucket was not found: {body}").into());
        }
        Ok(quick_xml::de::from_str(&body)?)
    }
}

/// The markers of the next page, which must move on from these.
fn next_markers(
    key: Option<String>,
    id: Option<String>,
    last_key: &str,
    last_id: &str,
) -> Result<(String, String), ToolError> {
    let key = key.unwrap_or_default();
    let id = id.unwrap_or_default();
    if key.is_empty() || (key == last_key && id == last_id) {
        return Err("a truncated listing gave no new marker".into());
    }
    Ok((key, id))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListVersionsResult {
    #[serde(default)]
    is_truncated: bool,
    next_key_marker: Option<String>,
    next_version_id_marker: Option<String>,
    #[serde(default, rename = "Version")]
    versions: Vec<VersionEntry>,
    #[serde(default, rename = "DeleteMarker")]
    delete_markers: Vec<VersionEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VersionEntry {
    key: String,
    version_id: String,
    last_modified: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListUploadsResult {
    #[serde(default)]
    is_truncated: bool,
    next_key_marker: Option<String>,
    next_upload_id_marker: Option<String>,
    #[serde(default, rename = "Upload")]
    uploads: Vec<UploadEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UploadEntry {
    key: String,
    upload_id: String,
    initiated: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_listing_keeps_versions_and_delete_markers_apart() {
        // As S3 documents it: versions and delete markers interleave.
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name><Prefix>p/report-files/</Prefix>
  <KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker>
  <MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>
  <NextKeyMarker>p/report-files/b</NextKeyMarker><NextVersionIdMarker>v3</NextVersionIdMarker>
  <DeleteMarker><Key>p/report-files/a</Key><VersionId>v2</VersionId><IsLatest>true</IsLatest>
    <LastModified>2026-01-02T03:04:05.000Z</LastModified><Owner><ID>x</ID></Owner></DeleteMarker>
  <Version><Key>p/report-files/a</Key><VersionId>v1</VersionId><IsLatest>false</IsLatest>
    <LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"e"</ETag><Size>3</Size>
    <Owner><ID>x</ID></Owner><StorageClass>STANDARD</StorageClass></Version>
  <Version><Key>p/report-files/b</Key><VersionId>v3</VersionId><IsLatest>true</IsLatest>
    <LastModified>2026-01-03T00:00:00Z</LastModified><Size>5</Size></Version>
</ListVersionsResult>"#;
        let page: ListVersionsResult = quick_xml::de::from_str(xml).unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.next_key_marker.as_deref(), Some("p/report-files/b"));
        assert_eq!(page.next_version_id_marker.as_deref(), Some("v3"));
        let ids: Vec<_> = page
            .versions
            .iter()
            .map(|v| v.version_id.as_str())
            .collect();
        assert_eq!(ids, ["v1", "v3"]);
        assert_eq!(page.delete_markers.len(), 1);
        assert_eq!(page.delete_markers[0].key, "p/report-files/a");
    }

    #[test]
    fn an_upload_listing_gives_keys_ids_and_start_times() {
        let xml = r#"<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>bucket</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <IsTruncated>false</IsTruncated>
  <Upload><Key>report-files/a</Key><UploadId>u1</UploadId>
    <Initiated>2026-01-01T00:00:00.000Z</Initiated><StorageClass>STANDARD</StorageClass></Upload>
</ListMultipartUploadsResult>"#;
        let page: ListUploadsResult = quick_xml::de::from_str(xml).unwrap();
        assert!(!page.is_truncated);
        assert_eq!(page.uploads.len(), 1);
        assert_eq!(page.uploads[0].upload_id, "u1");
        let empty: ListUploadsResult = quick_xml::de::from_str(
            "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>",
        )
        .unwrap();
        assert!(empty.uploads.is_empty());
    }

    #[test]
    fn a_listing_that_does_not_move_on_is_an_error() {
        assert!(next_markers(None, None, "", "").is_err());
        assert!(next_markers(Some("a".into()), Some("1".into()), "a", "1").is_err());
        assert_eq!(
            next_markers(Some("b".into()), None, "a", "1").unwrap(),
            ("b".to_string(), String::new())
        );
    }
}
