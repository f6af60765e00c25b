//! Lab step 9: a socket server and its clients.
//!
//! `ex9_socket_server [--unix PATH] [--clients N] [--lines K] [--serve]`
//!
//! A server listens on TCP 127.0.0.1, on a port the kernel picks (bind to
//! port 0, then ask which), or with `--unix` on a Unix-domain socket at
//! PATH. A thread accepts connections, and each connection gets a thread
//! of its own that answers every line `L` with `server got: L`: clients are
//! served at once, not one after another.
//!
//! N client threads (default 5) each connect, send K lines (default 3)
//! and read each reply. Once all are done, their replies are printed in
//! client order, the server is shut down, and the socket file removed:
//!
//! ```text
//! server 4242: listening on 127.0.0.1:41877
//! client 1: server got: client 1 line 1
//! ...
//! client 5: server got: client 5 line 3
//! server 4242: served 5 connections, closed
//! ```
//!
//! With `--serve` there are no clients: the server runs until SIGINT or
//! SIGTERM, then closes every connection, removes its socket file, says
//! `server PID: stopped by SIGINT, served N connections` and exits with
//! 128 + the signal.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::getpid;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;

const PROGRAM: &str = "ex9_socket_server";
const USAGE: &str = "usage: ex9_socket_server [--unix PATH] [--clients N] [--lines K] [--serve]";
const MAX_CLIENTS: usize = 200;
const MAX_LINES: usize = 100_000;

#[derive(Debug, PartialEq)]
struct Args {
    unix: Option<PathBuf>,
    clients: usize,
    lines: usize,
    serve: bool,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{PROGRAM}: {message} ({USAGE})");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("{PROGRAM}: {message}");
            ExitCode::from(1)
        }
    }
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        unix: None,
        clients: 5,
        lines: 3,
        serve: false,
    };
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--serve" => args.serve = true,
            "--unix" => {
                let path = argv.next().ok_or("--unix needs a path")?;
                args.unix = Some(PathBuf::from(path));
            }
            "--clients" | "--lines" => {
                let (most, least) = if arg == "--clients" {
                    (MAX_CLIENTS, 1)
                } else {
                    (MAX_LINES, 1)
                };
                let value = argv.next().ok_or(format!("{arg} needs a number"))?;
                let n = match value.parse::<usize>() {
                    Ok(n) if (least..=most).contains(&n) => n,
                    _ => {
                        return Err(format!(
                            "{arg} needs a whole number from {least} to {most}, got {value:?}"
                        ))
                    }
                };
                if arg == "--clients" {
                    args.clients = n;
                } else {
                    args.lines = n;
                }
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(args)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A connection of either kind, as the handlers and clients use it.
trait Connection: Read + Write + Send + 'static {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Connection>>;
    fn close(&self);
}

impl Connection for TcpStream {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Connection>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn close(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl Connection for UnixStream {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Connection>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn close(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

/// The listening socket, of either kind.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    fn bind(unix: Option<&PathBuf>) -> Result<Self, String> {
        match unix {
            // Port 0: the kernel picks a free one; `local_addr` says which.
            None => TcpListener::bind("127.0.0.1:0")
                .map(Listener::Tcp)
                .map_err(|e| format!("cannot listen on 127.0.0.1: {e}")),
            Some(path) => UnixListener::bind(path)
                .map(|l| Listener::Unix(l, path.clone()))
                .map_err(|e| format!("cannot listen on {}: {e}", path.display())),
        }
    }

    /// Where clients connect, as the first line says it.
    fn address(&self) -> Result<String, String> {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .map_err(|e| format!("cannot read the listening address: {e}")),
            Listener::Unix(_, path) => Ok(path.display().to_string()),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l, _) => l.as_fd(),
        }
    }

    fn accept(&self) -> std::io::Result<Box<dyn Connection>> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, _)| Box::new(s) as Box<dyn Connection>),
            Listener::Unix(l, _) => l.accept().map(|(s, _)| Box::new(s) as Box<dyn Connection>),
        }
    }

    fn connect(&self, address: &str) -> std::io::Result<Box<dyn Connection>> {
        match self {
            Listener::Tcp(_) => Ok(Box::new(TcpStream::connect(address)?)),
            Listener::Unix(..) => Ok(Box::new(UnixStream::connect(address)?)),
        }
    }
}

impl Drop for Listener {
    /// A Unix socket's name outlives the socket: removed here, on every
    /// way out.
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The server's side: the accepting thread and the connections it made.
struct Server {
    /// Written to when the server is to stop accepting.
    stop: os_pipe::PipeWriter,
    acceptor: thread::JoinHandle<Result<usize, String>>,
    /// Every connection accepted, to close at shutdown (a handler blocked
    /// in `read` wakes with end of file).
    open: Arc<Mutex<Vec<Box<dyn Connection>>>>,
}

impl Server {
    fn start(listener: Arc<Listener>) -> Result<Self, String> {
        let (wake, stop) = os_pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
        let open: Arc<Mutex<Vec<Box<dyn Connection>>>> = Arc::default();
        let connections = Arc::clone(&open);
        let acceptor = thread::Builder::new()
            .spawn(move || accept_loop(&listener, &wake, &connections))
            .map_err(|e| format!("cannot start the server thread: {e}"))?;
        Ok(Self {
            stop,
            acceptor,
            open,
        })
    }

    /// Stops accepting, closes every connection, joins every thread: the
    /// number of connections served.
    fn shut_down(mut self) -> Result<usize, String> {
        let _ = self.stop.write_all(b"!");
        drop(self.stop);
        let served = self
            .acceptor
            .join()
            .map_err(|_| "the server thread panicked".to_string())??;
        for connection in self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            connection.close();
        }
        Ok(served)
    }
}

/// Accepts until told to stop, each connection answered by a thread of
/// its own; joins them all before it returns how many there were.
fn accept_loop(
    listener: &Listener,
    wake: &os_pipe::PipeReader,
    open: &Mutex<Vec<Box<dyn Connection>>>,
) -> Result<usize, String> {
    let mut handlers = Vec::new();
    loop {
        let mut fds = [
            PollFd::new(listener.fd(), PollFlags::POLLIN),
            PollFd::new(wake.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("poll failed: {e}")),
        }
        if fds[1].any().unwrap_or(false) {
            break;
        }
        let connection = match listener.accept() {
            Ok(connection) => connection,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("accept failed: {e}")),
        };
        // A copy to close at shutdown; the handler owns the other.
        if let Ok(copy) = connection.try_clone_box() {
            open.lock().unwrap_or_else(|e| e.into_inner()).push(copy);
        }
        handlers.push(thread::spawn(move || answer(connection)));
    }
    // Whatever is still connected is closed now, so that every handler
    // ends.
    for connection in open.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        connection.close();
    }
    let served = handlers.len();
    for handler in handlers {
        let _ = handler.join();
    }
    Ok(served)
}

/// One connection's thread: each line in, `server got: LINE` out, until
/// the client closes its end (or the server closes it).
fn answer(connection: Box<dyn Connection>) {
    let Ok(mut writer) = connection.try_clone_box() else {
        return;
    };
    let mut reader = BufReader::new(connection);
    let mut line = String::new();
    while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
        let reply = format!("server got: {}\n", line.trim_end_matches('\n'));
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
        line.clear();
    }
}

/// One client: connects, sends its lines one at a time, and keeps each
/// reply as it came back over its own connection.
fn client(
    listener: &Listener,
    address: &str,
    n: usize,
    lines: usize,
) -> Result<Vec<String>, String> {
    let connection = listener
        .connect(address)
        .map_err(|e| format!("client {n} cannot connect to {address}: {e}"))?;
    let mut writer = connection
        .try_clone_box()
        .map_err(|e| format!("client {n}: {e}"))?;
    let mut reader = BufReader::new(connection);
    let mut replies = Vec::with_capacity(lines);
    for j in 1..=lines {
        writer
            .write_all(format!("client {n} line {j}\n").as_bytes())
            .map_err(|e| format!("client {n} cannot send: {e}"))?;
        let mut reply = String::new();
        match reader.read_line(&mut reply) {
            Ok(0) => return Err(format!("client {n}: the server closed the connection")),
            Ok(_) => replies.push(reply.trim_end_matches('\n').to_string()),
            Err(e) => return Err(format!("client {n} cannot read: {e}")),
        }
    }
    // Dropped here, both halves: the server's handler sees end of file.
    Ok(replies)
}

fn run(args: &Args) -> Result<u8, String> {
    let me = getpid();
    // SIGINT and SIGTERM as a descriptor, hooked before any thread
    // exists: a handler is the whole process's, and signal-hook's only
    // writes a byte, whichever thread the kernel interrupts.
    let (read, write) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let mut signals = SignalDelivery::with_pipe(read, write, SignalOnly, [SIGINT, SIGTERM])
        .map_err(|e| format!("cannot hook signals: {e}"))?;
    let listener = Arc::new(Listener::bind(args.unix.as_ref())?);
    let address = listener.address()?;
    say(&format!("server {me}: listening on {address}"));
    let server = Server::start(Arc::clone(&listener))?;

    if args.serve {
        let signal = loop {
            let mut fds = [PollFd::new(signals.get_read().as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(format!("poll failed: {e}")),
            }
            if let Some(signal) = signals.pending().next() {
                break signal;
            }
        };
        let served = server.shut_down()?;
        let name = nix::sys::signal::Signal::try_from(signal)
            .map(|s| s.as_str())
            .unwrap_or("a signal");
        drop(listener);
        say(&format!(
            "server {me}: stopped by {name}, served {served} connections"
        ));
        return Ok(128 + signal as u8);
    }

    let clients: Vec<_> = (1..=args.clients)
        .map(|n| {
            let (listener, address) = (Arc::clone(&listener), address.clone());
            let lines = args.lines;
            thread::spawn(move || client(&listener, &address, n, lines))
        })
        .collect();
    let mut failed = None;
    for (n, handle) in clients.into_iter().enumerate() {
        match handle.join() {
            Ok(Ok(replies)) => {
                for reply in replies {
                    say(&format!("client {}: {reply}", n + 1));
                }
            }
            Ok(Err(message)) => failed = failed.or(Some(message)),
            Err(_) => failed = failed.or(Some(format!("client {} panicked", n + 1))),
        }
    }
    let served = server.shut_down()?;
    drop(listener);
    if let Some(message) = failed {
        return Err(message);
    }
    say(&format!("server {me}: served {served} connections, closed"));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let parse = |w: &[&str]| parse_args(w.iter().map(|s| s.to_string()));
        let args = parse(&["--unix", "/tmp/s", "--clients", "2", "--serve"]).unwrap();
        assert_eq!(args.unix, Some(PathBuf::from("/tmp/s")));
        assert_eq!((args.clients, args.lines, args.serve), (2, 3, true));
        assert!(parse(&["--clients", "0"])
            .unwrap_err()
            .contains("from 1 to 200"));
        assert!(parse(&["--unix"]).unwrap_err().contains("needs a path"));
        assert!(parse(&["-x"]).unwrap_err().contains("unexpected"));
    }
}
