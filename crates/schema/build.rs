// `sqlx::migrate!` embeds migrations/ at compile time; rebuild when a file
// is added or changed there, or the binaries would carry a stale set.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
