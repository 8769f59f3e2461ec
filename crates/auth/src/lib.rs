//! Authentication building blocks that need no I/O: argon2id password
//! hashing and the permission catalog.

pub mod password;
mod permissions;

pub use permissions::Permission;
