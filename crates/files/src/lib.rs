//! Uploaded files (MIB texts, data-model documents, anything a tenant
//! keeps): the bytes on disk under `UPLOADS_DIR`, one directory per tenant,
//! each file named by its id (a name a client sends is never part of a
//! path); and their records (name, size, SHA-256, sniffed content type) in
//! the `files` table, under row-level security. Written as it streams in
//! (`store::Upload`), so no file is ever held whole in memory.

mod config;
pub mod records;
mod sniff;
pub mod store;

pub use config::{DEFAULT_MAX_BYTES, FileError, UploadConfig};
pub use records::{FileRecord, NewFile};
pub use sniff::content_type;
pub use store::{Storage, Upload};
