//! The conformance corpus: real payloads published by the platforms, kept
//! outside the repository and pointed at by `SWITCHBOARD_CONFORMANCE_DIR`.
//! Each connector's own tests read its part; this checks the pointer itself.

use std::path::PathBuf;

/// The corpus folder, if the environment names one. A set but missing
/// folder is a failure, never a silent skip.
pub fn corpus() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("SWITCHBOARD_CONFORMANCE_DIR")?);
    assert!(
        dir.is_dir(),
        "SWITCHBOARD_CONFORMANCE_DIR={} is set but is not a folder",
        dir.display()
    );
    Some(dir)
}

#[test]
fn the_corpus_is_where_the_environment_says() {
    let Some(dir) = corpus() else {
        eprintln!("SWITCHBOARD_CONFORMANCE_DIR not set; corpus tests have nothing to read");
        return;
    };
    for platform in ["slack", "teams", "matrix"] {
        let sub = dir.join(platform);
        assert!(sub.is_dir(), "{} is missing", sub.display());
        let files = std::fs::read_dir(&sub).expect("readable").count();
        assert!(files > 0, "{} is empty", sub.display());
    }
}
