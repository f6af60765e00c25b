//! Lab step 4: a chat room between unrelated processes, through FIFOs.
//! Read README.md beside this file.
//!
//! `ex4_named_pipe_chat NAME [--room DIR]`
//!
//! When finished, each member owns an inbox, a FIFO called `NAME.fifo` in
//! the room directory, and reads only that. To speak, a member writes the
//! line `NAME: text` into every other inbox. Joining and leaving are
//! announced as `* NAME joined` and `* NAME left`.
//!
//! ```text
//! member 4242 (alice): joined room /run/user/1000/ex4_named_pipe_chat; here already: bob
//! bob: hi alice
//! * bob left
//! member 4242 (alice): left (/quit); removed /run/user/1000/ex4_named_pipe_chat/alice.fifo
//! ```
//!
//! The rules it must keep:
//! - The room is a private directory (0700, ours); inboxes are 0600. A
//!   symlink, or anything that is not a FIFO, is never written to.
//! - Every message is one `write` of at most PIPE_BUF bytes; a longer line
//!   is sent in several parts.
//! - A stale inbox (a crashed member's FIFO) never blocks anyone; the next
//!   member to join or leave removes it (`remove_stale_inboxes`, given in
//!   `stale_inboxes.rs`), and a new member may take over its name; a live
//!   name is refused.
//! - `/quit`, end of input, Ctrl-C, SIGTERM and SIGHUP all leave cleanly:
//!   announce it, unlink the inbox, exit 0.
//! - An idle member uses no CPU: no busy polling.
//!
//! Bad names or options exit with status 2, an unusable room with 1.
//!
//! Every line it prints, word for word: README.md, "Output, exactly".
//!
//! Check your work: `cargo xtask grade ex4`. Stuck? `cargo xtask hint ex4`.

// TODO: delete this line when you are done; the warnings it hides will help.
#![allow(unused)]

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
    // TODO: loop: poll stdin, the inbox and the signals, with no timeout.
    // - signals: return Ok("signal");
    // - inbox readable: read everything there is (it is non-blocking), and
    //   print each complete line;
    // - stdin readable: read the descriptor itself (not std's buffered
    //   Stdin: why?); 0 bytes means end of input; handle /quit and /who, and
    //   `say` everything else.
    todo!("the chat loop")
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
    // TODO: cut `text` into `name: piece\n` messages of at most PIPE_BUF
    // bytes each, between characters (`is_char_boundary`).
    todo!("split a long line")
}

/// The room: a private directory holding one inbox FIFO per member.
struct RoomDir {
    path: PathBuf,
}

impl RoomDir {
    /// Creates the directory (mode 0700) or checks that the existing one is
    /// a real directory, ours, and closed to everyone else.
    fn open(path: &Path) -> Result<Self, String> {
        // TODO: create the directory with mode 0700 (DirBuilder), or accept an
        // existing one only if it is a real directory (not a symlink: use
        // symlink_metadata), owned by us, with no access for group or others.
        todo!("open the room")
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
        // TODO: for every other inbox: open it with `open_inbox_for_writing` (a
        // stale one fails: skip it), write the whole message in one `write`, and
        // report a full inbox (WouldBlock). Return the names reached.
        todo!("send to everyone else")
    }

    /// The last member out tidies up; it fails harmlessly if anyone is left.
    fn remove_if_empty(&self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Opens someone's inbox without blocking, and only if it is a real FIFO.
fn open_inbox_for_writing(path: &Path) -> std::io::Result<File> {
    // TODO: open for writing with O_NONBLOCK (why? two reasons) and
    // O_NOFOLLOW, and refuse anything that is not a FIFO.
    todo!("open someone's inbox safely")
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
        // TODO: mkfifo a temporary name (mode 0600), open it with `open_own`,
        // claim the real name with `claim_name`, remove the temporary name
        // whatever happened, and keep the inode to recognise our FIFO later.
        todo!("make our inbox")
    }

    fn open_own(path: &Path) -> Result<(File, File), String> {
        // TODO: open our FIFO for reading, then for writing (both O_NONBLOCK).
        // Why must the reader come first, and why keep a writer at all?
        todo!("open our own inbox")
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
        // TODO: unlink our FIFO, but only if the path still names our inode.
        todo!("remove our inbox")
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
