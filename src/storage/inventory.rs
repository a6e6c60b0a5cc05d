//! What storage holds under [`OBJECT_PREFIX`]: every version of every object
//! (delete markers included), and the multipart uploads begun and never
//! completed or aborted. For the sweep, and for tests that check that
//! nothing was left behind.

use std::path::{Path as FsPath, PathBuf};

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use object_store::{ObjectStoreExt, path::Path};

use super::{OBJECT_PREFIX, Storage, ToolError};

/// One version of an object, or a delete marker, in storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    pub key: String,
    /// The storage version id, in a bucket that has them.
    pub version: Option<String>,
    pub delete_marker: bool,
    pub last_modified: DateTime<Utc>,
}

/// A multipart upload begun and neither completed nor aborted.
#[derive(Debug, Clone)]
pub struct IncompleteUpload {
    pub key: String,
    pub started: DateTime<Utc>,
    handle: Handle,
}

#[derive(Debug, Clone)]
enum Handle {
    S3 {
        upload_id: String,
    },
    /// The local backend's staging file (`<key>#<n>`).
    Staging(PathBuf),
}

impl Storage {
    /// Every version of every object the server wrote, and every delete
    /// marker (a bucket without versioning has one version per object).
    pub async fn stored_versions(&self) -> Result<Vec<StoredVersion>, ToolError> {
        if let Some(signed) = &self.signed {
            let listed = signed.list_versions(OBJECT_PREFIX).await?;
            return Ok(listed
                .into_iter()
                .map(|v| StoredVersion {
                    key: v.key,
                    version: Some(v.version_id).filter(|id| id != "null"),
                    delete_marker: v.delete_marker,
                    last_modified: v.last_modified,
                })
                .collect());
        }
        let prefix = Path::from(OBJECT_PREFIX.trim_end_matches('/'));
        Ok(self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| StoredVersion {
                key: meta.location.to_string(),
                version: meta.version,
                delete_marker: false,
                last_modified: meta.last_modified,
            })
            .try_collect()
            .await?)
    }

    /// Every multipart upload under way or left behind: S3's incomplete
    /// uploads, the local backend's staging files.
    pub async fn incomplete_uploads(&self) -> Result<Vec<IncompleteUpload>, ToolError> {
        if let Some(signed) = &self.signed {
            let listed = signed.list_uploads(OBJECT_PREFIX).await?;
            return Ok(listed
                .into_iter()
                .map(|u| IncompleteUpload {
                    key: u.key,
                    started: u.initiated,
                    handle: Handle::S3 {
                        upload_id: u.upload_id,
                    },
                })
                .collect());
        }
        let Some(dir) = self.local_dir.clone() else {
            return Ok(Vec::new());
        };
        let files =
            tokio::task::spawn_blocking(move || staging_files(&dir, OBJECT_PREFIX)).await??;
        Ok(files
            .into_iter()
            .map(|f| IncompleteUpload {
                key: f.key,
                started: f.modified,
                handle: Handle::Staging(f.path),
            })
            .collect())
    }

    /// Deletes one version (or delete marker) for good.
    pub async fn delete_stored(&self, v: &StoredVersion) -> Result<(), ToolError> {
        match (&self.signed, &v.version) {
            (Some(signed), Some(version)) => signed.delete_version(&v.key, version).await,
            _ => Ok(self.store.delete(&Path::from(v.key.as_str())).await?),
        }
    }

    /// Aborts an incomplete upload found by [`Storage::incomplete_uploads`].
    pub async fn abort_incomplete(&self, u: &IncompleteUpload) -> Result<(), ToolError> {
        match (&self.signed, &u.handle) {
            (Some(signed), Handle::S3 { upload_id }) => {
                signed.abort_upload(&u.key, upload_id).await
            }
            (_, Handle::Staging(path)) => match tokio::fs::remove_file(path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            },
            (None, Handle::S3 { .. }) => Err("an S3 upload on a store that is not S3".into()),
        }
    }
}

/// A staging file of object_store's `LocalFileSystem`.
struct StagingFile {
    path: PathBuf,
    /// The key of the object it would have become.
    key: String,
    modified: DateTime<Utc>,
}

/// Whether `name` is a staging file's: `<name>#<digits>`. Object keys
/// cannot look like that (object_store refuses them).
fn is_staging_name(name: &str) -> bool {
    name.rsplit_once('#').is_some_and(|(base, n)| {
        !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The staging files under `dir/prefix`, with their keys.
fn staging_files(dir: &FsPath, prefix: &str) -> std::io::Result<Vec<StagingFile>> {
    let mut found = Vec::new();
    let start = dir.join(prefix.trim_end_matches('/'));
    walk(&start, &mut |path, meta| {
        let Ok(rel) = path.strip_prefix(dir) else {
            return;
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        let Some((key, _)) = rel.rsplit_once('#') else {
            return;
        };
        found.push(StagingFile {
            key: key.to_string(),
            path: path.to_path_buf(),
            modified: meta
                .modified()
                .map(DateTime::<Utc>::from)
                .unwrap_or_else(|_| Utc::now()),
        });
    })?;
    Ok(found)
}

/// Removes every staging file under `dir`; how many there were.
pub(super) async fn remove_all_staging_files(dir: PathBuf) -> Result<usize, ToolError> {
    Ok(tokio::task::spawn_blocking(move || {
        let mut staged = Vec::new();
        walk(&dir, &mut |path, _| staged.push(path.to_path_buf()))?;
        for path in &staged {
            std::fs::remove_file(path)?;
        }
        Ok::<_, std::io::Error>(staged.len())
    })
    .await??)
}

/// Calls `found` for each staging file under `dir`, following no links.
/// A missing `dir` has none.
fn walk(dir: &FsPath, found: &mut dyn FnMut(&FsPath, &std::fs::Metadata)) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            walk(&path, found)?;
        } else if kind.is_file() && is_staging_name(&entry.file_name().to_string_lossy()) {
            found(&path, &entry.metadata()?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_files_are_recognised_by_their_suffix() {
        for yes in ["abc#1", "report-files#12", "0a1b-uuid#3"] {
            assert!(is_staging_name(yes), "{yes}");
        }
        for no in ["abc", "abc#", "#1", "abc#x1", "abc#1x", "readme.txt"] {
            assert!(!is_staging_name(no), "{no}");
        }
    }

    #[tokio::test]
    async fn only_staging_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("report-files");
        std::fs::create_dir_all(&sub).unwrap();
        for name in ["kept", "left#1", "left#2", "other#x"] {
            std::fs::write(sub.join(name), b"x").unwrap();
        }
        let listed = staging_files(dir.path(), OBJECT_PREFIX).unwrap();
        let mut keys: Vec<_> = listed.iter().map(|f| f.key.as_str()).collect();
        keys.sort();
        assert_eq!(keys, ["report-files/left", "report-files/left"]);
        let removed = remove_all_staging_files(dir.path().to_path_buf())
            .await
            .unwrap();
        assert_eq!(removed, 2);
        let mut left: Vec<_> = std::fs::read_dir(&sub)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["kept", "other#x"]);
    }
}
