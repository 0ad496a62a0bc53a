// The console and play page are embedded from `assets/`. The embedding macro notices
// changes only to files it already embedded; built assets carry content hashes in their
// names, so a rebuild of the pages adds and removes files: watch the whole folder.
fn main() {
    println!("cargo:rerun-if-changed=assets");
}
