//! Demo: Unix-domain sockets, without a name and with one.
//!
//! `cargo run -p ex9_socket_server --example unix_pair`
//!
//! Part 1: `UnixStream::pair` makes two connected sockets at once, no
//! address, no listener. A thread gets one end, main keeps the other, and
//! they talk both ways.
//!
//! Part 2: a `UnixListener` bound to a path in the temporary directory. The
//! path becomes a file of type socket, which a client thread connects to by
//! name. When the listener is closed, the file is still there: the demo
//! shows it, then removes it (a guard removes it too if anything fails).
//!
//! What to watch for:
//! - A Unix socket never leaves the machine: no IP, no port, no loopback
//!   interface. The kernel just moves bytes between the two ends.
//! - `ls -l` would show the socket file with type `s`. Its permissions
//!   decide who may connect.
//! - Closing the socket does not remove its name. A second `bind` to the
//!   same path would fail with "Address already in use" until someone
//!   calls `remove_file`.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread;

/// Removes the socket file when dropped, whichever way `main` ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// What the path is right now, as the file system sees it.
fn describe(path: &Path) -> String {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => "exists, a socket file".to_string(),
        Ok(_) => "exists, but is not a socket".to_string(),
        Err(e) => format!("absent ({e})"),
    }
}

/// Reads one line from `stream`, without the newline.
fn read_one_line(stream: &UnixStream) -> std::io::Result<String> {
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line.trim_end().to_string())
}

fn part_one() -> Result<(), Box<dyn std::error::Error>> {
    println!("part 1: UnixStream::pair");
    let (mine, theirs) = UnixStream::pair()?;
    let other = thread::Builder::new().spawn(move || -> std::io::Result<()> {
        let question = read_one_line(&theirs)?;
        println!("  thread: got {question:?}, answering");
        (&theirs).write_all(b"fine, thanks\n")?;
        Ok(())
    })?;
    (&mine).write_all(b"how are you?\n")?;
    println!("  main: got {:?}", read_one_line(&mine)?);
    match other.join() {
        Ok(result) => result?,
        Err(_) => return Err("the thread panicked".into()),
    }
    println!("  main: thread joined; the pair had no name to clean up");
    Ok(())
}

fn part_two() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("ex9-unix-pair-{}.sock", std::process::id()));
    println!("part 2: UnixListener on {}", path.display());
    println!("  before bind: {}", describe(&path));
    let listener = UnixListener::bind(&path)?;
    // From here on the file is ours: removed however this function ends.
    let _cleanup = RemoveOnDrop(path.clone());
    println!("  listening:   {}", describe(&path));

    let client_path = path.clone();
    let client = thread::Builder::new().spawn(move || -> std::io::Result<String> {
        let stream = UnixStream::connect(&client_path)?;
        (&stream).write_all(b"hello by name\n")?;
        read_one_line(&stream)
    })?;
    let (connection, _) = listener.accept()?;
    let line = read_one_line(&connection)?;
    println!("  server: accepted a connection, read {line:?}");
    (&connection).write_all(format!("server got: {line}\n").as_bytes())?;
    match client.join() {
        Ok(reply) => println!("  client: read {:?}", reply?),
        Err(_) => return Err("the client thread panicked".into()),
    }
    drop(connection);

    drop(listener);
    println!("  listener closed: {}", describe(&path));
    fs::remove_file(&path)?;
    println!("  after remove_file: {}", describe(&path));
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    part_one()?;
    part_two()
}
