//! Test support for the workbook: run a lab binary as a real process, talk
//! to it, and check what it printed, how it ended and what it left behind.
//!
//! Rules these helpers follow, and tests using them should too:
//! - Never fork or change signal dispositions inside the test process: the
//!   test harness runs tests on threads. Run the real binary instead.
//! - Never assert on speed. Time limits here only stop a hung program, and
//!   are generous; speed belongs in `cargo xtask bench`.
//! - A failure message shows the command, the status, the time taken and
//!   `expected:`/`got:` blocks, so it reads at a glance.

pub mod pattern;
pub mod procs;
pub mod run;

pub use pattern::{Bindings, LinePattern};
pub use run::{LabCommand, LiveRun, Outcome};

/// A fresh private directory for one test, removed when dropped.
pub struct ScratchDir {
    path: std::path::PathBuf,
}

impl ScratchDir {
    pub fn new(label: &str) -> Self {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("labcheck-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self { path }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
