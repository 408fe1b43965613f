//! The checked-in C headers (`include/`) are what `build.rs` generates from `src/capi` now.
//! When this fails: `RSERPOOL_WRITE_HEADERS=1 cargo build`, and commit `include/`.

#[test]
fn the_checked_in_headers_are_current() {
    let generated = std::path::Path::new(env!("RSERPOOL_GENERATED_INCLUDE"));
    let include = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    for name in [
        "rserpool.h",
        "rserpool-policytypes.h",
        "rserpool-csp.h",
        "tagitem.h",
        "rserpool-internals.h",
    ] {
        let want = std::fs::read_to_string(generated.join(name)).unwrap();
        let have = std::fs::read_to_string(include.join(name)).unwrap_or_default();
        assert!(
            want == have,
            "include/{name} is stale: run RSERPOOL_WRITE_HEADERS=1 cargo build and commit include/"
        );
    }
}
