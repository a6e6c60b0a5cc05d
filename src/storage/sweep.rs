//! `reportfiles storage sweep`: reconciles storage with the table. Deletes
//! objects no row points at (every version of them, delete markers
//! included), aborts incomplete multipart uploads, and reports rows whose
//! object is missing without touching them: a row is a record of a
//! submission, and only a person can decide what to do with it.
//!
//! Only what is older than a threshold is touched: an object written a
//! moment ago may belong to an upload whose row is being inserted, and an
//! incomplete upload may still be receiving bytes.

use std::{collections::HashMap, fmt, time::Duration};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{IncompleteUpload, Storage, StoredVersion, ToolError};

/// What a report file row says storage holds.
#[derive(Debug, Clone)]
pub struct RecordedObject {
    pub file_id: Uuid,
    pub key: String,
    pub version: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Report what would be done, change nothing.
    pub dry_run: bool,
    /// Leave alone whatever is younger than this.
    pub older_than: Duration,
}

/// An object no row points at, with all its versions and delete markers.
#[derive(Debug, Clone)]
pub struct Orphan {
    pub key: String,
    pub versions: Vec<StoredVersion>,
}

/// One thing the sweep acted on, and the error if that failed.
#[derive(Debug, Clone)]
pub struct Swept<T> {
    pub item: T,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SweepReport {
    pub options: SweepOptions,
    pub orphans: Vec<Swept<Orphan>>,
    pub incomplete: Vec<Swept<IncompleteUpload>>,
    /// Reported only: never deleted.
    pub rows_without_objects: Vec<RecordedObject>,
    /// Orphans and incomplete uploads younger than the threshold.
    pub left_young: usize,
}

impl SweepReport {
    /// Whether everything the sweep tried went through.
    pub fn succeeded(&self) -> bool {
        self.orphans.iter().all(|o| o.error.is_none())
            && self.incomplete.iter().all(|u| u.error.is_none())
    }
}

impl Storage {
    /// Reconciles storage with `recorded`, the objects the table points at.
    /// Read `recorded` before calling this: an object that appears after
    /// is then at worst too young to touch, never a row without an object.
    /// A threshold shorter than the longest upload is safe only while no
    /// upload is running.
    pub async fn sweep(
        &self,
        recorded: &[RecordedObject],
        options: &SweepOptions,
    ) -> Result<SweepReport, ToolError> {
        let age = chrono::Duration::from_std(options.older_than)?;
        let cutoff = Utc::now()
            .checked_sub_signed(age)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let by_key = group_by_key(self.stored_versions().await?);
        let uploads = self.incomplete_uploads().await?;
        let (orphans, young_orphans) = orphans(by_key.clone(), recorded, cutoff);
        let (old_uploads, young_uploads): (Vec<_>, Vec<_>) =
            uploads.into_iter().partition(|u| u.started <= cutoff);
        let mut report = SweepReport {
            options: options.clone(),
            orphans: Vec::new(),
            incomplete: Vec::new(),
            rows_without_objects: rows_without_objects(recorded, &by_key),
            left_young: young_orphans + young_uploads.len(),
        };
        for orphan in orphans {
            let error = match options.dry_run {
                true => None,
                false => self.delete_orphan(&orphan).await.err(),
            };
            report.orphans.push(Swept {
                item: orphan,
                error: error.map(|e| e.to_string()),
            });
        }
        for upload in old_uploads {
            let error = match options.dry_run {
                true => None,
                false => self.abort_incomplete(&upload).await.err(),
            };
            report.incomplete.push(Swept {
                item: upload,
                error: error.map(|e| e.to_string()),
            });
        }
        Ok(report)
    }

    /// Deletes every version and delete marker of an orphan.
    async fn delete_orphan(&self, orphan: &Orphan) -> Result<(), ToolError> {
        for v in &orphan.versions {
            self.delete_stored(v).await?;
        }
        Ok(())
    }
}

fn group_by_key(stored: Vec<StoredVersion>) -> HashMap<String, Vec<StoredVersion>> {
    let mut by_key: HashMap<String, Vec<StoredVersion>> = HashMap::new();
    for v in stored {
        by_key.entry(v.key.clone()).or_default().push(v);
    }
    by_key
}

/// Keys no row points at and last changed before `cutoff` (sorted), and
/// how many more were younger.
fn orphans(
    mut by_key: HashMap<String, Vec<StoredVersion>>,
    recorded: &[RecordedObject],
    cutoff: DateTime<Utc>,
) -> (Vec<Orphan>, usize) {
    for r in recorded {
        by_key.remove(&r.key);
    }
    let (old, young): (Vec<_>, Vec<_>) = by_key
        .into_iter()
        .partition(|(_, versions)| versions.iter().map(|v| v.last_modified).max() <= Some(cutoff));
    let mut old: Vec<Orphan> = old
        .into_iter()
        .map(|(key, versions)| Orphan { key, versions })
        .collect();
    old.sort_by(|a, b| a.key.cmp(&b.key));
    (old, young.len())
}

/// Rows whose object (their version of it, where versions are recorded) is
/// not in storage.
fn rows_without_objects(
    recorded: &[RecordedObject],
    by_key: &HashMap<String, Vec<StoredVersion>>,
) -> Vec<RecordedObject> {
    let present = |r: &RecordedObject| {
        by_key.get(&r.key).is_some_and(|versions| {
            versions.iter().any(|v| {
                !v.delete_marker
                    && (r.version.is_none() || v.version.is_none() || r.version == v.version)
            })
        })
    };
    recorded.iter().filter(|r| !present(r)).cloned().collect()
}

impl fmt::Display for SweepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dry = self.options.dry_run;
        let age = humantime::format_duration(self.options.older_than);
        writeln!(
            f,
            "storage sweep of what is older than {age}{}",
            if dry {
                " (dry run: nothing is changed)"
            } else {
                ""
            }
        )?;
        let outcome = |error: &Option<String>, done: &str, would: &str| match (dry, error) {
            (true, _) => would.to_string(),
            (false, None) => done.to_string(),
            (false, Some(e)) => format!("FAILED: {e}"),
        };
        for o in &self.orphans {
            writeln!(
                f,
                "object without a row: {} ({}): {}",
                o.item.key,
                o.item.describe_versions(),
                outcome(&o.error, "deleted", "would be deleted")
            )?;
        }
        for u in &self.incomplete {
            writeln!(
                f,
                "incomplete upload: {} (started {}): {}",
                u.item.key,
                u.item.started.to_rfc3339(),
                outcome(&u.error, "aborted", "would be aborted")
            )?;
        }
        for r in &self.rows_without_objects {
            writeln!(
                f,
                "row without an object: report file {} ({}{}): reported only, not deleted",
                r.file_id,
                r.key,
                r.version
                    .as_deref()
                    .map(|v| format!(" version {v}"))
                    .unwrap_or_default()
            )?;
        }
        self.summary(f)
    }
}

impl SweepReport {
    fn summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (done, would) = ("deleted", "to delete");
        let (aborted, to_abort) = ("aborted", "to abort");
        let dry = self.options.dry_run;
        let failed = self.orphans.iter().filter(|o| o.error.is_some()).count()
            + self.incomplete.iter().filter(|u| u.error.is_some()).count();
        writeln!(
            f,
            "summary: objects without rows {}: {}; incomplete uploads {}: {}; \
             rows without objects: {} (reported only: the sweep never deletes a row; \
             restore its object or remove it by hand); younger items left alone: {}; \
             failures: {failed}",
            if dry { would } else { done },
            self.orphans.len(),
            if dry { to_abort } else { aborted },
            self.incomplete.len(),
            self.rows_without_objects.len(),
            self.left_young,
        )
    }
}

impl Orphan {
    /// "2 versions, 1 delete marker".
    fn describe_versions(&self) -> String {
        let markers = self.versions.iter().filter(|v| v.delete_marker).count();
        let versions = self.versions.len() - markers;
        let plural = |n: usize, what: &str| match n {
            1 => format!("1 {what}"),
            n => format!("{n} {what}s"),
        };
        match markers {
            0 => plural(versions, "version"),
            m => format!(
                "{}, {}",
                plural(versions, "version"),
                plural(m, "delete marker")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{StorageBackend, StorageConfig, UploadConfig};
    use object_store::{ObjectStoreExt, PutPayload, path::Path};

    fn version(key: &str, id: Option<&str>, marker: bool, age_secs: i64) -> StoredVersion {
        StoredVersion {
            key: key.into(),
            version: id.map(str::to_string),
            delete_marker: marker,
            last_modified: Utc::now() - chrono::Duration::seconds(age_secs),
        }
    }

    fn row(key: &str, v: Option<&str>) -> RecordedObject {
        RecordedObject {
            file_id: Uuid::new_v4(),
            key: key.into(),
            version: v.map(str::to_string),
        }
    }

    #[test]
    fn orphans_are_keys_without_rows_older_than_the_cutoff() {
        let by_key = group_by_key(vec![
            version("a", Some("1"), false, 100),
            version("b", Some("1"), false, 100),
            version("b", Some("2"), true, 100),
            version("c", Some("1"), false, 1),
        ]);
        let cutoff = Utc::now() - chrono::Duration::seconds(10);
        let (old, young) = orphans(by_key, &[row("a", Some("1"))], cutoff);
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].key, "b");
        assert_eq!(old[0].versions.len(), 2, "the delete marker goes too");
        assert_eq!(young, 1);
    }

    #[test]
    fn a_row_needs_a_live_version_of_its_own() {
        let by_key = group_by_key(vec![
            version("a", Some("1"), false, 5),
            version("b", Some("2"), true, 5),
            version("c", None, false, 5),
        ]);
        let rows = [
            row("a", Some("1")),
            row("a", Some("9")),
            row("b", Some("2")),
            row("c", None),
            row("d", None),
        ];
        let missing: Vec<_> = rows_without_objects(&rows, &by_key)
            .into_iter()
            .map(|r| format!("{}:{:?}", r.key, r.version))
            .collect();
        assert_eq!(missing, ["a:Some(\"9\")", "b:Some(\"2\")", "d:None"]);
    }

    #[tokio::test]
    async fn a_dry_run_changes_nothing_and_a_sweep_deletes_orphans() {
        let cfg = StorageConfig {
            backend: StorageBackend::Memory,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            max_retries: 0,
            retry_timeout: Duration::from_secs(1),
            abort_retry_for: Duration::from_secs(1),
        };
        let uploads = UploadConfig {
            max_bytes: 10,
            allowed_extensions: vec![],
            part_size: 5 << 20,
            part_concurrency: 1,
            idle_timeout: Duration::from_secs(1),
            encoded_copy: None,
        };
        let storage = Storage::new(&cfg, &uploads).unwrap();
        for key in ["report-files/kept", "report-files/orphan", "elsewhere"] {
            storage
                .store()
                .put(&Path::from(key), PutPayload::from_static(b"x"))
                .await
                .unwrap();
        }
        let rows = [
            row("report-files/kept", None),
            row("report-files/gone", None),
        ];
        let mut options = SweepOptions {
            dry_run: true,
            older_than: Duration::ZERO,
        };
        let report = storage.sweep(&rows, &options).await.unwrap();
        assert_eq!(report.orphans.len(), 1);
        assert_eq!(report.rows_without_objects.len(), 1);
        assert_eq!(storage.stored_versions().await.unwrap().len(), 2);
        assert!(report.to_string().contains("would be deleted"));

        options.dry_run = false;
        let report = storage.sweep(&rows, &options).await.unwrap();
        assert!(report.succeeded());
        let left: Vec<_> = storage
            .stored_versions()
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.key)
            .collect();
        assert_eq!(left, ["report-files/kept"]);
        let text = report.to_string();
        assert!(
            text.contains("object without a row: report-files/orphan"),
            "{text}"
        );
        assert!(text.contains("reported only, not deleted"), "{text}");
        assert!(
            storage.store().head(&Path::from("elsewhere")).await.is_ok(),
            "nothing outside report-files/ is touched"
        );
    }
}
