//! Lab step 4: a chat room between unrelated processes, through FIFOs.
//!
//! `ex4_named_pipe_chat NAME [--room DIR]`
//!
//! Start it in two or more terminals with different names. Each member owns
//! an inbox, a FIFO called `NAME.fifo` in the room directory, and reads only
//! that. To speak, a member writes the line into every other inbox. The
//! processes share no parent and no pipe: only the names in the directory.
//!
//! ```text
//! member 4242 (alice): joined room /run/user/1000/ex4_named_pipe_chat; here already: bob
//! * bob joined                  <- what alice sees when bob joins later
//! bob: hi alice                 <- a line bob typed
//! * bob left
//! ```
//!
//! Rules that keep the room safe:
//! - The room is a private directory (mode 0700, ours); inboxes are 0600.
//!   Anything in it that is a symlink or not a FIFO is never written to.
//! - Every message is one `write` of at most `PIPE_BUF` bytes, which POSIX
//!   makes atomic: concurrent writers never interleave inside a line.
//!   A longer line is sent as several messages.
//! - Writers open inboxes with `O_NONBLOCK`: an inbox nobody reads (a
//!   crashed member's stale FIFO) fails with ENXIO at once instead of
//!   blocking, and a full inbox fails with EAGAIN instead of stalling us.
//!   The next member to join or leave removes such stale FIFOs, so the
//!   last one out can remove the room.
//! - `/quit`, end of input, Ctrl-C, SIGTERM and SIGHUP all leave the same
//!   way: announce it, then unlink our inbox.
//! - An idle member sleeps in `poll` with no timeout: no CPU at all.

mod stale_inboxes;

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;
use nix::unistd::{getpid, mkfifo, Uid};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;

const PROGRAM: &str = "ex4_named_pipe_chat";
const USAGE: &str = "usage: ex4_named_pipe_chat NAME [--room DIR]";
const MAX_NAME_LEN: usize = 32;
/// Writes of at most this many bytes to a pipe are atomic (pipe(7)).
const PIPE_BUF: usize = nix::libc::PIPE_BUF;
/// A line typed without a newline is refused past this size.
const MAX_INPUT_LINE: usize = 1 << 20;
const INBOX_SUFFIX: &str = ".fifo";

struct Args {
    name: String,
    room: PathBuf,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args_os().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{PROGRAM}: {message} ({USAGE})");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{PROGRAM}: {message}");
            ExitCode::from(1)
        }
    }
}

fn parse_args(mut argv: impl Iterator<Item = OsString>) -> Result<Args, String> {
    let mut name = None;
    let mut room = None;
    while let Some(arg) = argv.next() {
        let text = arg.to_string_lossy();
        if let Some(value) = text.strip_prefix("--room=") {
            room = Some(PathBuf::from(value));
        } else if text == "--room" {
            room = Some(PathBuf::from(
                argv.next().ok_or("--room needs a directory")?,
            ));
        } else if text.starts_with('-') {
            return Err(format!("unknown option {text:?}"));
        } else if name.is_some() {
            return Err(format!("unexpected extra argument {text:?}"));
        } else {
            name = Some(check_name(&text)?);
        }
    }
    let name = name.ok_or("missing NAME, the name others will see")?;
    let room = room.unwrap_or_else(default_room);
    Ok(Args { name, room })
}

fn check_name(name: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(allowed) {
        return Err(format!(
            "bad name {name:?}: use 1 to {MAX_NAME_LEN} letters, digits, '-' or '_'"
        ));
    }
    Ok(name.to_string())
}

/// A per-user directory: under `$XDG_RUNTIME_DIR` when there is one (it is
/// private already), else in /tmp with the user id in its name.
fn default_room() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => Path::new(&dir).join(PROGRAM),
        _ => PathBuf::from(format!("/tmp/{PROGRAM}-{}", Uid::effective())),
    }
}

fn run(args: &Args) -> Result<(), String> {
    let me = getpid();
    let who = format!("member {me} ({})", args.name);
    let mut signals = LeaveSignals::hook()?;
    let room = RoomDir::open(&args.room)?;
    room.remove_stale_inboxes(&who);
    let inbox = Inbox::create(&room, &args.name)?;

    let delivered = room.broadcast(&args.name, &format!("* {} joined\n", args.name));
    let here = if delivered.is_empty() {
        "nobody else is here yet".to_string()
    } else {
        format!("here already: {}", delivered.join(", "))
    };
    println!("{who}: joined room {}; {here}", room.path.display());

    let result = chat(&room, &inbox, &mut signals, &args.name);
    // Leave the same way whatever ended the chat, error included.
    room.broadcast(&args.name, &format!("* {} left\n", args.name));
    let inbox_path = inbox.path.clone();
    drop(inbox); // unlinks the FIFO
    room.remove_stale_inboxes(&who);
    room.remove_if_empty();
    match &result {
        Ok(why) => println!("{who}: left ({why}); removed {}", inbox_path.display()),
        Err(_) => println!(
            "{who}: left after an error; removed {}",
            inbox_path.display()
        ),
    }
    result.map(drop)
}

/// The conversation loop. Returns why it ended.
fn chat(
    room: &RoomDir,
    inbox: &Inbox,
    signals: &mut LeaveSignals,
    name: &str,
) -> Result<&'static str, String> {
    let stdin = std::io::stdin();
    let mut typed = LineBuffer::default();
    let mut received = LineBuffer::default();
    let mut out = std::io::stdout().lock();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let mut fds = [
            PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
            PollFd::new(inbox.reader.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("poll failed: {e}")),
        }
        let ready = fds.map(|fd| fd.any().unwrap_or(false));
        if ready[2] && signals.arrived() {
            return Ok("signal");
        }
        if ready[1] {
            // Drain the inbox. Each message arrived whole (one atomic
            // write), but a read may still hold several of them.
            loop {
                match (&inbox.reader).read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => received.push(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("cannot read my inbox: {e}")),
                }
            }
            while let Some(line) = received.next_line() {
                out.write_all(&line)
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(|e| format!("cannot write to stdout: {e}"))?;
            }
            out.flush().ok();
        }
        if ready[0] {
            // Read the descriptor itself, not through std's buffered Stdin:
            // bytes hidden in a buffer would be invisible to `poll`.
            let n = match nix::unistd::read(stdin.as_fd(), &mut chunk) {
                Ok(n) => n,
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Err(e) => return Err(format!("cannot read stdin: {e}")),
            };
            if n == 0 {
                if let Some(last) = typed.take_rest() {
                    say(room, name, &last);
                }
                return Ok("end of input");
            }
            typed.push(&chunk[..n]);
            if typed.pending_len() > MAX_INPUT_LINE {
                typed.clear();
                eprintln!("{PROGRAM}: line longer than {MAX_INPUT_LINE} bytes; not sent");
            }
            while let Some(line) = typed.next_line() {
                if line == b"/quit" {
                    return Ok("/quit");
                }
                if line == b"/who" {
                    let names = room.member_names(name);
                    println!("members here: {}", names.join(", "));
                    continue;
                }
                say(room, name, &line);
            }
        }
    }
}

/// Sends one typed line to every other member, split into atomic pieces.
fn say(room: &RoomDir, name: &str, line: &[u8]) {
    let Ok(text) = std::str::from_utf8(line) else {
        eprintln!("{PROGRAM}: that line is not valid UTF-8; not sent");
        return;
    };
    let text = text.trim_end_matches('\r');
    if text.trim().is_empty() {
        return;
    }
    let pieces = split_message(name, text);
    if pieces.len() > 1 {
        eprintln!(
            "{PROGRAM}: a line may hold at most {} bytes; sent in {} parts",
            PIPE_BUF - name.len() - 3,
            pieces.len()
        );
    }
    for piece in pieces {
        room.broadcast(name, &piece);
    }
}

/// `name: text\n` messages, each at most PIPE_BUF bytes, cut between
/// characters so that every piece is valid UTF-8 on its own.
fn split_message(name: &str, text: &str) -> Vec<String> {
    let room_for_text = PIPE_BUF - name.len() - ": \n".len();
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(room_for_text);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        pieces.push(format!("{name}: {}\n", &rest[..cut]));
        rest = &rest[cut..];
    }
    pieces
}

/// The room: a private directory holding one inbox FIFO per member.
struct RoomDir {
    path: PathBuf,
}

impl RoomDir {
    /// Creates the directory (mode 0700) or checks that the existing one is
    /// a real directory, ours, and closed to everyone else.
    fn open(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        match std::fs::DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create room {shown}: {e}")),
        }
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| format!("cannot inspect room {shown}: {e}"))?;
        if meta.file_type().is_symlink() {
            return Err(format!("room {shown} is a symlink; refusing to follow it"));
        }
        if !meta.is_dir() {
            return Err(format!("room {shown} is not a directory"));
        }
        if meta.uid() != Uid::effective().as_raw() {
            return Err(format!("room {shown} belongs to another user"));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(format!(
                "room {shown} is open to other users (mode {:o}); use `chmod 700` or another room",
                meta.mode() & 0o777
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    fn inbox_path(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}{INBOX_SUFFIX}"))
    }

    /// The names of every inbox in the room except `except`'s.
    fn inbox_names(&self, except: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter_map(|file| file.strip_suffix(INBOX_SUFFIX).map(str::to_string))
            .filter(|name| name != except && check_name(name).is_ok())
            .collect();
        names.sort();
        names
    }

    /// Members whose inbox someone is reading right now.
    fn member_names(&self, me: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .inbox_names(me)
            .into_iter()
            .filter(|name| open_inbox_for_writing(&self.inbox_path(name)).is_ok())
            .collect();
        names.insert(0, format!("{me} (you)"));
        names
    }

    /// Writes `message` into every other member's inbox in one `write`.
    /// Returns the names it reached. Stale inboxes are skipped silently,
    /// a full one is reported: its owner is stopped or not reading.
    fn broadcast(&self, me: &str, message: &str) -> Vec<String> {
        debug_assert!(message.len() <= PIPE_BUF);
        let mut reached = Vec::new();
        for name in self.inbox_names(me) {
            let Ok(mut inbox) = open_inbox_for_writing(&self.inbox_path(&name)) else {
                continue;
            };
            match inbox.write(message.as_bytes()) {
                Ok(n) if n == message.len() => reached.push(name),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    eprintln!("{PROGRAM}: {name}'s inbox is full; {name} missed a message");
                }
                // EPIPE: the reader left between open and write. A short
                // write cannot happen for a pipe write of <= PIPE_BUF bytes.
                _ => {}
            }
        }
        reached
    }

    /// The last member out tidies up; it fails harmlessly if anyone is left.
    fn remove_if_empty(&self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Opens someone's inbox without blocking, and only if it is a real FIFO.
fn open_inbox_for_writing(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        // O_NONBLOCK: fail with ENXIO instead of waiting when nobody reads
        // (a stale inbox), and with EAGAIN instead of blocking when full.
        // O_NOFOLLOW: never write through a symlink planted in the room.
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW)
        .open(path)?;
    if !file.metadata()?.file_type().is_fifo() {
        return Err(std::io::Error::new(ErrorKind::InvalidInput, "not a FIFO"));
    }
    Ok(file)
}

/// Our own FIFO. Dropping it unlinks it.
struct Inbox {
    path: PathBuf,
    reader: File,
    /// We hold a write end of our own FIFO so that `poll` never reports a
    /// hang-up when the last other writer closes: without it, an idle member
    /// would spin on POLLHUP instead of sleeping.
    _keepalive: File,
    inode: u64,
}

impl Inbox {
    /// Creates `NAME.fifo` so that it appears in the room only once it has a
    /// reader: made under a temporary name, opened, then hard-linked to its
    /// real name, which fails if the name exists. A writer can therefore
    /// take ENXIO ("nobody reads this") as proof that an inbox is stale.
    fn create(room: &RoomDir, name: &str) -> Result<Self, String> {
        let path = room.inbox_path(name);
        let temporary = room.path.join(format!(".{name}.{}.new", getpid()));
        mkfifo(&temporary, Mode::S_IRUSR | Mode::S_IWUSR)
            .map_err(|e| format!("cannot make a FIFO in {}: {e}", room.path.display()))?;
        let claimed = Self::open_own(&temporary)
            .and_then(|ends| Self::claim_name(&temporary, &path, name, &room.path).map(|()| ends));
        // The temporary name goes whatever happened; on success the FIFO
        // lives on under its real name.
        let _ = std::fs::remove_file(&temporary);
        let (reader, keepalive) = claimed?;
        let inode = reader.metadata().map(|m| m.ino()).unwrap_or(0);
        Ok(Self {
            path,
            reader,
            _keepalive: keepalive,
            inode,
        })
    }

    fn open_own(path: &Path) -> Result<(File, File), String> {
        let open = |write: bool| {
            OpenOptions::new()
                .read(!write)
                .write(write)
                .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))
        };
        // Reader first: opening a FIFO for writing with O_NONBLOCK fails
        // while it has no reader.
        let reader = open(false)?;
        let keepalive = open(true)?;
        Ok((reader, keepalive))
    }

    fn claim_name(temporary: &Path, path: &Path, name: &str, room: &Path) -> Result<(), String> {
        for _ in 0..3 {
            match std::fs::hard_link(temporary, path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
            }
            let meta = std::fs::symlink_metadata(path);
            match &meta {
                Ok(m) if m.file_type().is_fifo() => {}
                Ok(_) => {
                    return Err(format!(
                        "{} exists and is not a FIFO; refusing to touch it",
                        path.display()
                    ))
                }
                Err(_) => continue, // gone meanwhile: try again
            }
            match open_inbox_for_writing(path) {
                Ok(_) => {
                    return Err(format!(
                        "the name {name} is taken in {}; pick another",
                        room.display()
                    ))
                }
                Err(e) if e.raw_os_error() == Some(nix::libc::ENXIO) => {
                    // Nobody reads it: a crashed member's leftover. Remove
                    // it, but only if it is still the same file we examined.
                    let same = std::fs::symlink_metadata(path)
                        .is_ok_and(|now| meta.as_ref().is_ok_and(|m| m.ino() == now.ino()));
                    if same {
                        let _ = std::fs::remove_file(path);
                    }
                }
                Err(e) => return Err(format!("cannot check {}: {e}", path.display())),
            }
        }
        Err(format!("could not claim {}", path.display()))
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        // Unlink only our own FIFO, never one someone else made since.
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP as a descriptor that `poll` can watch.
/// signal-hook's handler only notes the signal and writes a byte to a
/// socket (the self-pipe trick), which is async-signal-safe; the leaving
/// itself happens in the main loop.
struct LeaveSignals {
    delivery: SignalDelivery<UnixStream, SignalOnly>,
}

impl LeaveSignals {
    fn hook() -> Result<Self, String> {
        let (read, write) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        let delivery =
            SignalDelivery::with_pipe(read, write, SignalOnly, [SIGINT, SIGTERM, SIGHUP])
                .map_err(|e| format!("cannot hook signals: {e}"))?;
        Ok(Self { delivery })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.delivery.get_read().as_fd()
    }

    fn arrived(&mut self) -> bool {
        self.delivery.pending().next().is_some()
    }
}

/// Bytes in, complete lines (without `\n`) out.
#[derive(Default)]
struct LineBuffer {
    bytes: Vec<u8>,
}

impl LineBuffer {
    fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
    }

    fn next_line(&mut self) -> Option<Vec<u8>> {
        let end = self.bytes.iter().position(|&b| b == b'\n')?;
        let mut line: Vec<u8> = self.bytes.drain(..=end).collect();
        line.pop();
        Some(line)
    }

    /// What is left after the last newline, at end of input.
    fn take_rest(&mut self) -> Option<Vec<u8>> {
        (!self.bytes.is_empty()).then(|| std::mem::take(&mut self.bytes))
    }

    fn pending_len(&self) -> usize {
        self.bytes.len()
    }

    fn clear(&mut self) {
        self.bytes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("alice_2").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("../etc").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"x".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn long_lines_split_into_atomic_pieces() {
        let text = "é".repeat(PIPE_BUF);
        let pieces = split_message("bob", &text);
        assert!(pieces.len() > 1);
        for piece in &pieces {
            assert!(piece.len() <= PIPE_BUF, "{} bytes", piece.len());
            assert!(piece.starts_with("bob: ") && piece.ends_with('\n'));
        }
        let joined: String = pieces
            .iter()
            .map(|p| &p["bob: ".len()..p.len() - 1])
            .collect();
        assert_eq!(joined, text);
        assert_eq!(split_message("bob", "hi"), vec!["bob: hi\n".to_string()]);
    }

    #[test]
    fn lines_are_reassembled() {
        let mut buffer = LineBuffer::default();
        buffer.push(b"one\ntw");
        assert_eq!(buffer.next_line(), Some(b"one".to_vec()));
        assert_eq!(buffer.next_line(), None);
        buffer.push(b"o\n");
        assert_eq!(buffer.next_line(), Some(b"two".to_vec()));
        assert_eq!(buffer.take_rest(), None);
    }
}
