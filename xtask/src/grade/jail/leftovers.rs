//! What a grading killed outright (SIGKILL, a lost terminal) could not
//! remove: its binaries' snapshot, its keepers' scratch directories, its
//! build and dependency directories. Each is named after the PID of the
//! process that made it; the next grading removes those whose process is
//! gone.

use std::path::Path;

/// The temporary directories a grading makes, by the start of their name:
/// each goes on with the PID of its maker (`xtask-grade-4242`,
/// `xtask-build-4242-1`).
const MADE_BY_A_GRADING: [&str; 4] = ["xtask-grade-", "xtask-bins-", "xtask-build-", "xtask-deps-"];

/// Removes, under `dir`, each directory a grading made whose maker is no
/// longer running and which belongs to this user; returns how many. A
/// directory whose PID is alive is kept: it may be another grading's (or,
/// PIDs being reused, it stays until a later sweep).
pub fn sweep(dir: &Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = MADE_BY_A_GRADING
            .iter()
            .find_map(|prefix| name.strip_prefix(prefix))
        else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // Not a link, a directory of ours: nothing else is touched.
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != me || pid <= 0 {
            continue;
        }
        // Signal 0 asks only whether the PID exists (EPERM: it does).
        let alive = !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        );
        if !alive && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_dead_makers_directories_go() {
        let root = std::env::temp_dir().join(format!("sweep-test-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        // A PID that cannot be running: above the kernel's maximum.
        let dead = 1 << 23;
        let mine = std::process::id();
        for name in [
            format!("xtask-grade-{dead}"),
            format!("xtask-build-{dead}-3"),
            format!("xtask-bins-{mine}"),
            format!("xtask-deps-{mine}"),
            "xtask-grade-notapid".to_string(),
            format!("someone-else-{dead}"),
        ] {
            std::fs::create_dir_all(root.join(&name).join("inside")).unwrap();
        }
        std::fs::write(root.join(format!("xtask-bins-{}", dead + 1)), "a file").unwrap();
        assert_eq!(sweep(&root), 2);
        let left: std::collections::BTreeSet<String> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!left.contains(&format!("xtask-grade-{dead}")));
        assert!(!left.contains(&format!("xtask-build-{dead}-3")));
        for kept in [
            format!("xtask-bins-{mine}"),
            format!("xtask-deps-{mine}"),
            "xtask-grade-notapid".to_string(),
            format!("someone-else-{dead}"),
            format!("xtask-bins-{}", dead + 1),
        ] {
            assert!(left.contains(&kept), "{kept} went");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
