//! The exits of socket calls: a socket made, named (bind), listening,
//! connected, or a connection accepted.

use super::*;

impl Worker {
    /// The exit of a socket call: made, named, listening, connected,
    /// accepting.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn on_socket_call(
        &mut self,
        raw: i32,
        family: Family,
        nr: i64,
        a0: u64,
        entry: Entry,
        result: i64,
    ) {
        use nix::libc;
        let event = |this: &mut Self, kind: EventKind| this.exit_event(raw, &entry, kind);
        match family {
            Family::Socket => {
                let mut socket = event(self, EventKind::Socket);
                socket.code = Some(a0 as i32);
                socket.text = Some(calls::name(nr).to_string());
                socket.fd = (nr == libc::SYS_socket).then_some(result as i32);
                self.record(socket);
            }
            Family::Connect | Family::Bind => {
                let kind = if family == Family::Bind {
                    EventKind::Bind
                } else {
                    EventKind::Connect
                };
                let mut named = event(self, kind);
                named.fd = Some(a0 as i32);
                named.text = entry.path;
                named.target = entry.target;
                self.record(named);
            }
            Family::Listen => {
                let mut listen = event(self, EventKind::Listen);
                listen.fd = Some(a0 as i32);
                listen.target = entry.target;
                self.record(listen);
            }
            Family::Accept => {
                // The new connection's own socket, and the listener's.
                let mut accepted = event(self, EventKind::Accept);
                accepted.fd = Some(result as i32);
                accepted.target = fd_target(raw, result as RawFd);
                accepted.source = entry.target;
                self.record(accepted);
            }
            _ => {}
        }
    }
}
