//! The one table of the system calls the tracer knows ([`CALLS`]): for
//! each, its name, its family (what its event is), and what the seccomp
//! filter does with it. The filter (`filter::seccomp_filter`), the
//! decoder's dispatch (`prepare` and `on_exit` match on the family) and
//! every call's name are derived from this table, so adding a call of a
//! family the decoder knows is one line here. Calls not in the table run
//! unwatched.
//!
//! x86_64 only: on other architectures the table is empty and the filter
//! allows everything (the grader then checks output only).

/// What a call's event is, as the decoder reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// kill and its kin: a `kill` event.
    SignalSend,
    /// sigtimedwait: a `signal` event.
    SignalWait,
    /// wait4, waitid: a `reap` or a `waited_*` event.
    Wait,
    /// A new pipe.
    Pipe,
    /// Bytes read from a pipe, FIFO, socket or signalfd.
    Read,
    /// Bytes written.
    Write,
    /// Bytes moved between descriptors without passing through memory the
    /// tracer sees (their content is unknown): a `write` that is `unseen`.
    Move,
    /// An open (logged for FIFOs only).
    Open,
    /// mknod (logged for FIFOs only).
    Mknod,
    Unlink,
    /// A link or a rename: a name that now means the same file.
    Link,
    Socket,
    Connect,
    Bind,
    Listen,
    Accept,
    /// Watched for a refusal only (a limit): a successful fork is the
    /// ptrace fork event's.
    Fork,
    /// Watched for a refusal only (memory limits).
    Memory,
    /// Watched for a refusal only (the open-files limit).
    Dup,
    /// Never runs: refused or answered by the filter.
    Refused,
}

/// Why the sandbox refuses a call: the filter's verdict data (2 and up;
/// 1 is "watched") and the words of the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    IoUring = 2,
    WritesMemory = 3,
    Untraced = 4,
    I386 = 5,
    X32 = 6,
    TakesDescriptors = 7,
    OwnFilter = 8,
}

impl Refusal {
    pub const ALL: [Refusal; 7] = [
        Refusal::IoUring,
        Refusal::WritesMemory,
        Refusal::Untraced,
        Refusal::I386,
        Refusal::X32,
        Refusal::TakesDescriptors,
        Refusal::OwnFilter,
    ];

    /// The filter's verdict data for it.
    pub fn data(self) -> u32 {
        self as u32
    }

    pub fn of_data(data: u32) -> Option<Refusal> {
        Self::ALL.into_iter().find(|r| r.data() == data)
    }

    /// The verdict's words.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::IoUring => "io_uring is not allowed in this workbook (its I/O cannot be observed)",
            Refusal::WritesMemory => "process_vm_writev is not allowed in this workbook (it writes into another process's memory)",
            Refusal::Untraced => "clone with CLONE_UNTRACED is not allowed in this workbook (it would escape the tracer)",
            Refusal::I386 => "system calls through the i386 ABI (int 0x80) are not allowed in this workbook",
            Refusal::X32 => "system calls through the x32 ABI are not allowed in this workbook",
            Refusal::TakesDescriptors => "pidfd_getfd is not allowed in this workbook (it takes another process's descriptors)",
            Refusal::OwnFilter => "a seccomp filter of the program's own is not allowed in this workbook (its verdicts would reach the grader's tracer)",
        }
    }
}

/// What the filter does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It runs, unwatched.
    Allow,
    /// A seccomp stop: the tracer sees its entry and its exit.
    Watch,
    /// A seccomp stop where the tracer refuses it (ENOSYS) and says why.
    Refuse(Refusal),
    /// The filter answers ENOSYS itself (libc then falls back).
    Enosys,
}

/// A test on the low 32 bits of one argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    /// Any of these bits set.
    AnySet(u32),
    /// Equal to one of these.
    OneOf(&'static [u32]),
}

impl Test {
    /// The table's own reading, which the filter is tested against.
    #[cfg(test)]
    pub fn holds(self, value: u32) -> bool {
        match self {
            Test::AnySet(bits) => value & bits != 0,
            Test::OneOf(values) => values.contains(&value),
        }
    }
}

/// The filter's rule for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Always(Action),
    /// `then` when `test` holds for argument `arg`, else `otherwise`.
    When {
        arg: usize,
        test: Test,
        then: Action,
        otherwise: Action,
    },
}

impl Rule {
    /// The action for a call with these arguments: the table's own
    /// reading, which the filter is tested against.
    #[cfg(test)]
    pub fn action(self, args: &[u64]) -> Action {
        match self {
            Rule::Always(action) => action,
            Rule::When {
                arg,
                test,
                then,
                otherwise,
            } => {
                let value = args.get(arg).copied().unwrap_or(0) as u32;
                if test.holds(value) {
                    then
                } else {
                    otherwise
                }
            }
        }
    }
}

/// One system call the tracer knows.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    pub nr: i64,
    pub name: &'static str,
    pub family: Family,
    pub rule: Rule,
}

#[cfg(target_arch = "x86_64")]
const fn watched(nr: i64, name: &'static str, family: Family) -> Call {
    Call {
        nr,
        name,
        family,
        rule: Rule::Always(Action::Watch),
    }
}

#[cfg(target_arch = "x86_64")]
const fn refused(nr: i64, name: &'static str, why: Refusal) -> Call {
    Call {
        nr,
        name,
        family: Family::Refused,
        rule: Rule::Always(Action::Refuse(why)),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86_64 {
    use super::{refused, watched, Action, Call, Family::*, Refusal, Rule, Test};
    use nix::libc;

    const CLONE_UNTRACED: u32 = 0x0080_0000;

    pub const CALLS: &[Call] = &[
        watched(libc::SYS_kill, "kill", SignalSend),
        watched(libc::SYS_tkill, "tkill", SignalSend),
        watched(libc::SYS_tgkill, "tgkill", SignalSend),
        watched(libc::SYS_rt_sigqueueinfo, "rt_sigqueueinfo", SignalSend),
        watched(libc::SYS_rt_tgsigqueueinfo, "rt_tgsigqueueinfo", SignalSend),
        watched(libc::SYS_pidfd_send_signal, "pidfd_send_signal", SignalSend),
        watched(libc::SYS_rt_sigtimedwait, "rt_sigtimedwait", SignalWait),
        watched(libc::SYS_wait4, "wait4", Wait),
        watched(libc::SYS_waitid, "waitid", Wait),
        watched(libc::SYS_pipe, "pipe", Pipe),
        watched(libc::SYS_pipe2, "pipe2", Pipe),
        watched(libc::SYS_read, "read", Read),
        watched(libc::SYS_readv, "readv", Read),
        watched(libc::SYS_pread64, "pread64", Read),
        watched(libc::SYS_preadv, "preadv", Read),
        watched(libc::SYS_preadv2, "preadv2", Read),
        watched(libc::SYS_recvfrom, "recvfrom", Read),
        watched(libc::SYS_recvmsg, "recvmsg", Read),
        watched(libc::SYS_recvmmsg, "recvmmsg", Read),
        watched(libc::SYS_write, "write", Write),
        watched(libc::SYS_writev, "writev", Write),
        watched(libc::SYS_pwrite64, "pwrite64", Write),
        watched(libc::SYS_pwritev, "pwritev", Write),
        watched(libc::SYS_pwritev2, "pwritev2", Write),
        watched(libc::SYS_sendto, "sendto", Write),
        watched(libc::SYS_sendmsg, "sendmsg", Write),
        watched(libc::SYS_sendmmsg, "sendmmsg", Write),
        watched(libc::SYS_vmsplice, "vmsplice", Move),
        watched(libc::SYS_sendfile, "sendfile", Move),
        watched(libc::SYS_splice, "splice", Move),
        watched(libc::SYS_tee, "tee", Move),
        watched(libc::SYS_copy_file_range, "copy_file_range", Move),
        watched(libc::SYS_open, "open", Open),
        watched(libc::SYS_openat, "openat", Open),
        watched(libc::SYS_openat2, "openat2", Open),
        watched(libc::SYS_creat, "creat", Open),
        watched(libc::SYS_mknod, "mknod", Mknod),
        watched(libc::SYS_mknodat, "mknodat", Mknod),
        watched(libc::SYS_unlink, "unlink", Unlink),
        watched(libc::SYS_unlinkat, "unlinkat", Unlink),
        watched(libc::SYS_link, "link", Link),
        watched(libc::SYS_linkat, "linkat", Link),
        watched(libc::SYS_rename, "rename", Link),
        watched(libc::SYS_renameat, "renameat", Link),
        watched(libc::SYS_renameat2, "renameat2", Link),
        watched(libc::SYS_socket, "socket", Socket),
        watched(libc::SYS_socketpair, "socketpair", Socket),
        watched(libc::SYS_connect, "connect", Connect),
        watched(libc::SYS_bind, "bind", Bind),
        watched(libc::SYS_listen, "listen", Listen),
        watched(libc::SYS_accept, "accept", Accept),
        watched(libc::SYS_accept4, "accept4", Accept),
        watched(libc::SYS_fork, "fork", Fork),
        watched(libc::SYS_vfork, "vfork", Fork),
        // CLONE_UNTRACED in its flags (args[0]) would escape the tracer.
        Call {
            nr: libc::SYS_clone,
            name: "clone",
            family: Fork,
            rule: Rule::When {
                arg: 0,
                test: Test::AnySet(CLONE_UNTRACED),
                then: Action::Refuse(Refusal::Untraced),
                otherwise: Action::Watch,
            },
        },
        // Its flags are in memory the filter cannot read: libc falls back
        // to clone, whose flags it can.
        Call {
            nr: libc::SYS_clone3,
            name: "clone3",
            family: Refused,
            rule: Rule::Always(Action::Enosys),
        },
        watched(libc::SYS_mmap, "mmap", Memory),
        watched(libc::SYS_mremap, "mremap", Memory),
        watched(libc::SYS_brk, "brk", Memory),
        // Only when it makes memory writable (prot is args[2]), which
        // RLIMIT_DATA may refuse.
        Call {
            nr: libc::SYS_mprotect,
            name: "mprotect",
            family: Memory,
            rule: Rule::When {
                arg: 2,
                test: Test::AnySet(libc::PROT_WRITE as u32),
                then: Action::Watch,
                otherwise: Action::Allow,
            },
        },
        watched(libc::SYS_dup, "dup", Dup),
        // Only when it duplicates (cmd is args[1]).
        Call {
            nr: libc::SYS_fcntl,
            name: "fcntl",
            family: Dup,
            rule: Rule::When {
                arg: 1,
                test: Test::OneOf(&[libc::F_DUPFD as u32, libc::F_DUPFD_CLOEXEC as u32]),
                then: Action::Watch,
                otherwise: Action::Allow,
            },
        },
        refused(libc::SYS_io_uring_setup, "io_uring_setup", Refusal::IoUring),
        refused(libc::SYS_io_uring_enter, "io_uring_enter", Refusal::IoUring),
        refused(
            libc::SYS_io_uring_register,
            "io_uring_register",
            Refusal::IoUring,
        ),
        refused(
            libc::SYS_process_vm_writev,
            "process_vm_writev",
            Refusal::WritesMemory,
        ),
        refused(
            libc::SYS_pidfd_getfd,
            "pidfd_getfd",
            Refusal::TakesDescriptors,
        ),
        refused(libc::SYS_seccomp, "seccomp", Refusal::OwnFilter),
        // A filter of the program's own by prctl (option is args[0]);
        // other prctls run.
        Call {
            nr: libc::SYS_prctl,
            name: "prctl",
            family: Refused,
            rule: Rule::When {
                arg: 0,
                test: Test::OneOf(&[libc::PR_SET_SECCOMP as u32]),
                then: Action::Refuse(Refusal::OwnFilter),
                otherwise: Action::Allow,
            },
        },
    ];
}

/// Every system call the tracer knows.
#[cfg(target_arch = "x86_64")]
pub const CALLS: &[Call] = x86_64::CALLS;
#[cfg(not(target_arch = "x86_64"))]
pub const CALLS: &[Call] = &[];

/// The table's entry for `nr`.
pub fn call(nr: i64) -> Option<&'static Call> {
    CALLS.iter().find(|c| c.nr == nr)
}

/// The family of `nr`, if the table has it.
pub fn family(nr: i64) -> Option<Family> {
    call(nr).map(|c| c.family)
}

pub fn is(nr: i64, family: Family) -> bool {
    self::family(nr) == Some(family)
}

/// Whether `nr` puts bytes somewhere: a write, or a move of unseen
/// content.
pub fn writes(nr: i64) -> bool {
    matches!(family(nr), Some(Family::Write | Family::Move))
}

/// Its name, or `syscall` for one the table does not have.
pub fn name(nr: i64) -> &'static str {
    call(nr).map_or("syscall", |c| c.name)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn each_call_is_in_the_table_once() {
        for (i, a) in CALLS.iter().enumerate() {
            for b in &CALLS[i + 1..] {
                assert!(
                    a.nr != b.nr && a.name != b.name,
                    "{} and {}",
                    a.name,
                    b.name
                );
            }
        }
    }

    /// A call that may be watched has a family the decoder reads; one that
    /// is only ever refused or answered has none.
    #[test]
    fn families_and_rules_agree() {
        for call in CALLS {
            let actions = match call.rule {
                Rule::Always(a) => vec![a],
                Rule::When {
                    then, otherwise, ..
                } => vec![then, otherwise],
            };
            let may_run_watched = actions.contains(&Action::Watch);
            assert_eq!(
                may_run_watched,
                call.family != Family::Refused,
                "{}: family {:?}, rule {:?}",
                call.name,
                call.family,
                call.rule
            );
        }
    }
}
