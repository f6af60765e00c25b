//! What a command costs the kernel per round trip, beside its time: the
//! system calls each of its processes makes (counted by a small tracer of
//! its own, `ptrace` syscall stops) and how often its processes were
//! switched out (the kernel's rusage of waited-for children).
//!
//! The bench's timings run untraced; a traced run is only counted.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::sys::ptrace::{self, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// The system calls one process made, by name, in the order it was
/// created among the command's processes (0 is the command itself).
pub struct ProcessCalls {
    pub calls: BTreeMap<&'static str, u64>,
}

impl ProcessCalls {
    pub fn total(&self) -> u64 {
        self.calls.values().sum()
    }
}

fn name_of(nr: i64) -> &'static str {
    use nix::libc;
    match nr {
        libc::SYS_read => "read",
        libc::SYS_write => "write",
        libc::SYS_poll | libc::SYS_ppoll => "poll",
        libc::SYS_wait4 | libc::SYS_waitid => "wait",
        _ => "other",
    }
}

/// Runs `command` traced, with `input` on stdin and stdout thrown away,
/// and counts each of its processes' system calls.
pub fn count(mut command: Command, input: &Path) -> Result<Vec<ProcessCalls>, String> {
    let stdin = std::fs::File::open(input).map_err(|e| format!("{}: {e}", input.display()))?;
    command
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: PTRACE_TRACEME is one async-signal-safe system call.
    unsafe {
        command.pre_exec(|| ptrace::traceme().map_err(std::io::Error::from));
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let root = Pid::from_raw(child.id() as i32);
    // The child stops at its exec (SIGTRAP) before running any of its code.
    match waitpid(root, None) {
        Ok(WaitStatus::Stopped(_, Signal::SIGTRAP)) => {}
        other => return Err(format!("the traced {command:?} did not start: {other:?}")),
    }
    ptrace::setoptions(
        root,
        Options::PTRACE_O_TRACESYSGOOD
            | Options::PTRACE_O_TRACEFORK
            | Options::PTRACE_O_TRACEVFORK
            | Options::PTRACE_O_TRACECLONE
            | Options::PTRACE_O_EXITKILL,
    )
    .map_err(|e| format!("ptrace options: {e}"))?;
    let mut order: Vec<Pid> = vec![root];
    let mut counts: Vec<BTreeMap<&'static str, u64>> = vec![BTreeMap::new()];
    // Syscall stops come in pairs, entry then exit; count entries only.
    let mut inside: BTreeMap<Pid, bool> = BTreeMap::new();
    let _ = ptrace::syscall(root, None);
    loop {
        let status = match waitpid(None, Some(WaitPidFlag::__WALL)) {
            Ok(status) => status,
            Err(Errno::ECHILD) => break,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("waitpid: {e}")),
        };
        match status {
            WaitStatus::PtraceSyscall(pid) => {
                let entering = !inside.get(&pid).copied().unwrap_or(false);
                inside.insert(pid, entering);
                if entering {
                    if let Ok(regs) = ptrace::getregs(pid) {
                        let index = slot(&mut order, &mut counts, pid);
                        *counts[index]
                            .entry(name_of(regs.orig_rax as i64))
                            .or_default() += 1;
                    }
                }
                let _ = ptrace::syscall(pid, None);
            }
            WaitStatus::PtraceEvent(pid, _, _) => {
                let _ = ptrace::syscall(pid, None);
            }
            // A new process's first stop, or a signal to pass on.
            WaitStatus::Stopped(pid, signal) => {
                let new = !order.contains(&pid);
                slot(&mut order, &mut counts, pid);
                let pass = (!(new && signal == Signal::SIGSTOP)).then_some(signal);
                let _ = ptrace::syscall(pid, pass);
            }
            WaitStatus::Exited(..) | WaitStatus::Signaled(..) => {}
            _ => {}
        }
    }
    drop(child);
    Ok(counts
        .into_iter()
        .map(|calls| ProcessCalls { calls })
        .collect())
}

fn slot(order: &mut Vec<Pid>, counts: &mut Vec<BTreeMap<&'static str, u64>>, pid: Pid) -> usize {
    match order.iter().position(|p| *p == pid) {
        Some(index) => index,
        None => {
            order.push(pid);
            counts.push(BTreeMap::new());
            order.len() - 1
        }
    }
}

/// Context switches (voluntary, involuntary) of every child process that
/// ended and was waited for so far, this one's and their descendants'.
pub fn children_switches() -> (i64, i64) {
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN) {
        Ok(usage) => (
            usage.voluntary_context_switches(),
            usage.involuntary_context_switches(),
        ),
        Err(_) => (0, 0),
    }
}
