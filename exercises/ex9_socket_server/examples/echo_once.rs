//! Demo: one TCP connection on the loopback interface, start to finish.
//!
//! `cargo run -p ex9_socket_server --example echo_once`
//!
//! Main binds a listening socket to 127.0.0.1, port 0, and asks the kernel
//! which port it picked. A client thread connects to that port, sends one
//! line and reads the echo; main accepts the connection, reads the line and
//! writes it back. Both ends are closed and the thread joined before main
//! returns: nothing is left listening.
//!
//! What to watch for:
//! - `bind` to port 0 never collides with another program: the kernel
//!   chooses a free port, and `local_addr` is the only way to learn it.
//!   Run the demo twice: the port changes.
//! - The listening socket and the connection are two different sockets.
//!   `accept` makes a new one for each client, with the client's address
//!   and port as its peer; the listener goes on listening.
//! - The client may connect before main calls `accept`: the kernel
//!   completes the handshake and queues the connection (the backlog)
//!   until someone accepts it.
//! - The server knows the client is done when `read_line` returns 0 bytes:
//!   end of file, because the client shut down its writing half.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Port 0 means "any free port"; 127.0.0.1 means "loopback only".
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    println!(
        "server: listening on {address} (the kernel chose port {})",
        address.port()
    );

    let client = thread::Builder::new().spawn(move || -> std::io::Result<String> {
        let mut stream = TcpStream::connect(address)?;
        println!(
            "client: connected from {} to {}",
            stream.local_addr()?,
            stream.peer_addr()?
        );
        stream.write_all(b"hello over loopback\n")?;
        // Nothing more to send: the server's read will see end of file.
        stream.shutdown(Shutdown::Write)?;
        let mut echo = String::new();
        BufReader::new(&stream).read_line(&mut echo)?;
        Ok(echo.trim_end().to_string())
    })?;

    // Blocks until a connection is queued (perhaps one already is).
    let (connection, peer) = listener.accept()?;
    println!("server: accepted a connection from {peer}");
    let mut reader = BufReader::new(&connection);
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 {
        println!("server: read {:?}, writing it back", line.trim_end());
        (&connection).write_all(line.as_bytes())?;
        line.clear();
    }
    println!("server: read returned 0 bytes: the client closed its half");
    drop(reader);
    drop(connection);

    match client.join() {
        Ok(echo) => println!("client: the echo was {:?}", echo?),
        Err(_) => return Err("the client thread panicked".into()),
    }
    // The listener is closed here, when it goes out of scope.
    println!("server: client joined, closing the listener on {address}");
    Ok(())
}
