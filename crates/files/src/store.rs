//! The bytes of uploaded files: `{UPLOADS_DIR}/{tenant id}/{file id}`.
//! An upload is written to `.partial-{file id}` beside its final place,
//! hashed and counted as it arrives, and renamed into place only once it is
//! whole and its record is written; a partial file is removed when the
//! upload is dropped unfinished, and left-overs of a crash are swept at
//! start.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::config::{FileError, UploadConfig};
use crate::sniff::{SNIFF_LEN, content_type};

const PARTIAL: &str = ".partial-";

/// Where the files are.
#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
    max_bytes: u64,
}

impl Storage {
    pub fn new(config: &UploadConfig) -> Self {
        Self {
            root: config.dir.clone(),
            max_bytes: config.max_bytes,
        }
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Creates the directory if needed, checks that it can be written, and
    /// removes partial files older than `stale` (an upload cut off by a
    /// crash); answers how many it removed.
    pub async fn prepare(&self, stale: Duration) -> std::io::Result<usize> {
        tokio::fs::create_dir_all(&self.root).await?;
        let probe = self.root.join(format!("{PARTIAL}probe-{}", Uuid::new_v4()));
        tokio::fs::write(&probe, b"").await?;
        tokio::fs::remove_file(&probe).await?;
        let mut removed = 0;
        let mut tenants = tokio::fs::read_dir(&self.root).await?;
        while let Some(tenant) = tenants.next_entry().await? {
            if !tenant.file_type().await?.is_dir() {
                continue;
            }
            let mut files = tokio::fs::read_dir(tenant.path()).await?;
            while let Some(file) = files.next_entry().await? {
                let partial = file.file_name().to_string_lossy().starts_with(PARTIAL);
                let age = file
                    .metadata()
                    .await?
                    .modified()
                    .ok()
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .unwrap_or_default();
                if partial && age >= stale {
                    tokio::fs::remove_file(file.path()).await?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    fn tenant_dir(&self, tenant: Uuid) -> PathBuf {
        self.root.join(tenant.to_string())
    }

    /// Where a file's bytes are.
    pub fn path_of(&self, tenant: Uuid, id: Uuid) -> PathBuf {
        self.tenant_dir(tenant).join(id.to_string())
    }

    /// Starts an upload for `tenant` under a new id.
    pub async fn begin(&self, tenant: Uuid) -> Result<Upload, FileError> {
        let dir = self.tenant_dir(tenant);
        tokio::fs::create_dir_all(&dir).await?;
        let id = Uuid::now_v7();
        let partial = dir.join(format!("{PARTIAL}{id}"));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
            .await?;
        Ok(Upload {
            id,
            partial,
            target: dir.join(id.to_string()),
            file: Some(file),
            hasher: Sha256::new(),
            size: 0,
            limit: self.max_bytes,
            head: Vec::with_capacity(SNIFF_LEN),
            placed: false,
        })
    }

    /// Opens a file's bytes for reading.
    pub async fn open(&self, tenant: Uuid, id: Uuid) -> std::io::Result<tokio::fs::File> {
        tokio::fs::File::open(self.path_of(tenant, id)).await
    }

    /// Removes a file's bytes (nothing to remove is not an error).
    pub async fn remove(&self, tenant: Uuid, id: Uuid) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.path_of(tenant, id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// What a whole upload turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
    pub content_type: &'static str,
}

/// One file being received. Dropped before [`Upload::place`], its partial
/// file is removed.
#[derive(Debug)]
pub struct Upload {
    id: Uuid,
    partial: PathBuf,
    target: PathBuf,
    file: Option<tokio::fs::File>,
    hasher: Sha256,
    size: u64,
    limit: u64,
    head: Vec<u8>,
    placed: bool,
}

impl Upload {
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Appends a chunk; past the limit, refuses it (the upload is then
    /// dropped with what it wrote).
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), FileError> {
        if self.size + chunk.len() as u64 > self.limit {
            return Err(FileError::TooLarge { limit: self.limit });
        }
        let file = self.file.as_mut().expect("an unfinished upload");
        file.write_all(chunk).await?;
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        let room = SNIFF_LEN - self.head.len();
        self.head.extend_from_slice(&chunk[..chunk.len().min(room)]);
        Ok(())
    }

    /// Flushes the bytes to disk and says what they are.
    pub async fn finish(&mut self) -> Result<Received, FileError> {
        let mut file = self.file.take().expect("an unfinished upload");
        file.flush().await?;
        file.sync_all().await?;
        Ok(Received {
            size: self.size,
            sha256: self
                .hasher
                .clone()
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            content_type: content_type(&self.head),
        })
    }

    /// Moves the finished file into its place.
    pub async fn place(mut self) -> std::io::Result<()> {
        tokio::fs::rename(&self.partial, &self.target).await?;
        self.placed = true;
        Ok(())
    }

    /// The partial file (for tests: it must be gone after a refusal).
    pub fn partial_path(&self) -> &Path {
        &self.partial
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(limit: u64) -> (Storage, PathBuf) {
        let dir = std::env::temp_dir().join(format!("ferro-files-{}", Uuid::new_v4()));
        let storage = Storage::new(&UploadConfig {
            dir: dir.clone(),
            max_bytes: limit,
        });
        (storage, dir)
    }

    #[tokio::test]
    async fn an_upload_is_hashed_placed_by_id_and_a_refused_one_leaves_nothing() {
        let (storage, dir) = storage(10);
        storage.prepare(Duration::from_secs(3600)).await.unwrap();
        let tenant = Uuid::new_v4();

        let mut upload = storage.begin(tenant).await.unwrap();
        upload.write(b"hello ").await.unwrap();
        upload.write(b"you").await.unwrap();
        let received = upload.finish().await.unwrap();
        assert_eq!(received.size, 9);
        let whole: String = Sha256::digest(b"hello you")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(received.sha256, whole, "hashed as it streamed");
        assert_eq!(received.content_type, "text/plain");
        let id = upload.id();
        upload.place().await.unwrap();
        let bytes = tokio::fs::read(storage.path_of(tenant, id)).await.unwrap();
        assert_eq!(bytes, b"hello you");

        let mut big = storage.begin(tenant).await.unwrap();
        big.write(b"0123456789").await.unwrap();
        let err = big.write(b"!").await.unwrap_err();
        assert!(matches!(err, FileError::TooLarge { limit: 10 }), "{err}");
        let partial = big.partial_path().to_owned();
        assert!(partial.exists());
        drop(big);
        assert!(!partial.exists(), "a refused upload leaves nothing");

        storage.remove(tenant, id).await.unwrap();
        storage.remove(tenant, id).await.unwrap();
        assert!(!storage.path_of(tenant, id).exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn partial_files_left_by_a_crash_are_swept_at_start() {
        let (storage, dir) = storage(10);
        let tenant = Uuid::new_v4();
        let upload = storage.begin(tenant).await.unwrap();
        let partial = upload.partial_path().to_owned();
        std::mem::forget(upload);
        assert_eq!(storage.prepare(Duration::from_secs(3600)).await.unwrap(), 0);
        assert!(partial.exists(), "a recent partial may still be written");
        assert_eq!(storage.prepare(Duration::ZERO).await.unwrap(), 1);
        assert!(!partial.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
