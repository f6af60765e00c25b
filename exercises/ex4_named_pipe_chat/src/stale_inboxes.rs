//! Given, complete (nothing to write here): removing the inboxes that
//! nobody reads any more. The solution has this very file, and
//! `cargo xtask check` keeps the two the same.

use std::os::unix::fs::MetadataExt;

use crate::{open_inbox_for_writing, RoomDir, INBOX_SUFFIX};

impl RoomDir {
    /// Removes the inboxes that nobody reads, and says so on behalf of
    /// `who`. A member killed with `kill -9` leaves its FIFO behind, and
    /// without this the room could never be removed. An inbox gets its
    /// name only once its owner reads it (see `Inbox::create`) and loses
    /// it before its owner stops reading, so ENXIO from a nonblocking open
    /// for writing proves that its owner is gone.
    pub(crate) fn remove_stale_inboxes(&self, who: &str) {
        let mut removed = Vec::new();
        // Every inbox, ours included: no name is empty.
        for name in self.inbox_names("") {
            let path = self.inbox_path(&name);
            let Ok(before) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let nobody_reads = open_inbox_for_writing(&path)
                .is_err_and(|e| e.raw_os_error() == Some(nix::libc::ENXIO));
            // Only the very FIFO found stale: a member may have claimed the
            // name again since.
            let same = std::fs::symlink_metadata(&path).is_ok_and(|now| now.ino() == before.ino());
            if nobody_reads && same && std::fs::remove_file(&path).is_ok() {
                removed.push(format!("{name}{INBOX_SUFFIX}"));
            }
        }
        if !removed.is_empty() {
            println!(
                "{who}: removed stale inboxes nobody was reading: {}",
                removed.join(", ")
            );
        }
    }
}
