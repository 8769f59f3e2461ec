//! Where uploads go and how large one may be, from the environment; and
//! what can go wrong with a file.

use std::path::PathBuf;

use ferro_config::{ConfigError, Env};

/// The default `UPLOAD_MAX_BYTES`: 20 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 20 * 1024 * 1024;

/// Where uploads go and how large one may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadConfig {
    /// `UPLOADS_DIR` (default `uploads`, relative to the working
    /// directory): shared by the api, which writes, and the worker, which
    /// reads (the `uploads` volume in compose).
    pub dir: PathBuf,
    /// `UPLOAD_MAX_BYTES` (default 20 MiB): the largest file accepted.
    pub max_bytes: u64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("uploads"),
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

impl UploadConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        const SIZE: &str = "a size in bytes, from 1 to 1073741824 (1 GiB)";
        let max_bytes = env.parse_or("UPLOAD_MAX_BYTES", DEFAULT_MAX_BYTES, SIZE)?;
        if max_bytes == 0 || max_bytes > 1 << 30 {
            return Err(ConfigError::Invalid {
                variable: "UPLOAD_MAX_BYTES",
                expected: SIZE,
            });
        }
        let dir = PathBuf::from(env.raw("UPLOADS_DIR").unwrap_or("uploads"));
        Ok(Self { dir, max_bytes })
    }
}

/// What can go wrong with a file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The upload grew past the limit; what was written is gone.
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The storage could not be read or written.
    #[error("file storage failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Db(#[from] ferro_db::DbError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_has_defaults_and_refuses_bad_sizes() {
        let config = UploadConfig::from_env(&Env::from_pairs([("X", "y")])).unwrap();
        assert_eq!(config.max_bytes, DEFAULT_MAX_BYTES);
        assert_eq!(config.dir, PathBuf::from("uploads"));
        for bad in ["0", "-1", "twenty", "1073741825"] {
            let err =
                UploadConfig::from_env(&Env::from_pairs([("UPLOAD_MAX_BYTES", bad)])).unwrap_err();
            assert_eq!(err.variable(), "UPLOAD_MAX_BYTES", "{bad}");
            assert!(!err.to_string().contains(bad) || bad == "0", "{err}");
        }
    }
}
