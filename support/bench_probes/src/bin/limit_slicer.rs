//! `limit_slicer [--tuning T] COPIES SLICE_NS -- COMMAND [ARGS...]`: the
//! smallest round-robin coordinator that can exist, the machine's floor
//! for step 5.
//!
//! It starts COPIES of COMMAND stopped (each raises SIGSTOP before its
//! exec), then runs them one at a time: SIGCONT, a timerfd armed at an
//! absolute deadline one slice after the last (the reference's rule, so
//! that lateness does not add up), SIGSTOP, and a wait
//! for the kernel to confirm the stop before the next program is
//! continued. A program that exits mid-slice hands over at once (its pidfd
//! wakes the same `poll`). Nothing is allocated and nothing is printed in
//! the loop: every system call it makes is one a slicer cannot do without.
//!
//! The tuning says what it asks of the kernel, so that the bench can show
//! what each choice is worth:
//! - `plain`: nothing, the kernel's defaults;
//! - `slack`: 1 ns of timer slack (the default lets a timer fire 50 us late);
//! - `fifo` (the default): `slack`, and SCHED_FIFO 1 when permitted, as the
//!   reference does;
//! - `pinned`: `fifo`, with the coordinator on CPU 0 and the programs on
//!   CPU 1.
//!
//! At the end it prints, on stderr, what it got and where its own error
//! comes from: `tuning T policy fifo|other`; how late the timer woke it
//! (deadline to running again) and how long each stop took to be confirmed
//! (SIGSTOP sent to the wait returning), as `lateness_ns P50 P99 MAX` and
//! `stop_ns P50 P99 MAX`; and when it sent each SIGCONT and SIGSTOP
//! (`cont_at_ns T...`, `stop_at_ns T...`, CLOCK_MONOTONIC), which the bench
//! sets beside what the workers saw.

use std::ffi::CString;
use std::process::ExitCode;

use nix::libc;

/// At most this many slices are timed (the bench runs about a hundred).
const MAX_SLICES: usize = 1 << 16;

fn now_ns() -> i64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec * 1_000_000_000 + t.tv_nsec
}

#[derive(Clone, Copy, PartialEq)]
enum Tuning {
    Plain,
    Slack,
    Fifo,
    Pinned,
}

/// Each tuning by the name `--tuning` takes and the report gives.
const TUNINGS: [(&str, Tuning); 4] = [
    ("plain", Tuning::Plain),
    ("slack", Tuning::Slack),
    ("fifo", Tuning::Fifo),
    ("pinned", Tuning::Pinned),
];

/// A CPU set holding only `cpu`.
fn only_cpu(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET writes in it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        set
    }
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut tuning = Tuning::Fifo;
    if args.first().map(String::as_str) == Some("--tuning") {
        let named = args.get(1).map(String::as_str);
        let Some(&(_, named)) = TUNINGS.iter().find(|(name, _)| Some(*name) == named) else {
            eprintln!("limit_slicer: --tuning takes plain, slack, fifo or pinned");
            return ExitCode::from(2);
        };
        tuning = named;
        args.drain(..2);
    }
    let (Some(copies), Some(slice_ns), Some("--")) = (
        args.first().and_then(|n| n.parse::<usize>().ok()),
        args.get(1).and_then(|n| n.parse::<i64>().ok()),
        args.get(2).map(String::as_str),
    ) else {
        eprintln!("usage: limit_slicer [--tuning T] COPIES SLICE_NS -- COMMAND [ARGS...]");
        return ExitCode::from(2);
    };
    let Ok(argv) = args[3..]
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return ExitCode::from(2);
    };
    if argv.is_empty() {
        return ExitCode::from(2);
    }
    let mut pointers: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    pointers.push(std::ptr::null());

    let pinned = tuning == Tuning::Pinned;
    let Some((mut pids, pidfds)) = start_stopped(copies, &pointers, pinned) else {
        return ExitCode::from(1);
    };
    let fifo = ask_the_kernel(tuning);
    // SAFETY: plain system calls; the descriptor is ours.
    let timer = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) };
    if timer < 0 {
        return ExitCode::from(1);
    }
    let mut lateness = vec![0i64; MAX_SLICES];
    let mut stops = vec![0i64; MAX_SLICES];
    let mut cont_at = vec![0i64; MAX_SLICES];
    let mut stop_at = vec![0i64; MAX_SLICES];
    let mut continued = 0;
    let mut timed = 0;
    let mut alive = copies;
    let mut next = 0;
    let mut base = now_ns();
    while alive > 0 {
        let i = next;
        next = (next + 1) % copies;
        if pids[i] == 0 {
            continue;
        }
        // The reference's rule and the lab sheet's: the next deadline
        // builds on the last one, so that lateness does not add up.
        if base + slice_ns <= now_ns() {
            base = now_ns();
        }
        let deadline = base + slice_ns;
        let at = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: deadline / 1_000_000_000,
                tv_nsec: deadline % 1_000_000_000,
            },
        };
        let mut fds = [
            libc::pollfd {
                fd: timer,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfds[i],
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: plain system calls on our descriptors and child.
        let exited = unsafe {
            libc::timerfd_settime(timer, libc::TFD_TIMER_ABSTIME, &at, std::ptr::null_mut());
            if continued < MAX_SLICES {
                cont_at[continued] = now_ns();
                continued += 1;
            }
            libc::kill(pids[i], libc::SIGCONT);
            while libc::poll(fds.as_mut_ptr(), 2, -1) < 0 {}
            let woke = now_ns();
            let mut expirations = 0u64;
            if fds[0].revents != 0 {
                libc::read(timer, (&mut expirations as *mut u64).cast(), 8);
            }
            let mut status = 0;
            if fds[1].revents != 0 {
                libc::waitpid(pids[i], &mut status, 0);
                true
            } else {
                let sent = now_ns();
                libc::kill(pids[i], libc::SIGSTOP);
                libc::waitpid(pids[i], &mut status, libc::WUNTRACED);
                if timed < MAX_SLICES {
                    lateness[timed] = woke - deadline;
                    stop_at[timed] = sent;
                    stops[timed] = now_ns() - sent;
                    timed += 1;
                }
                !libc::WIFSTOPPED(status)
            }
        };
        if exited {
            // Hand over at once: the next program gets a whole slice.
            pids[i] = 0;
            alive -= 1;
            base = now_ns();
        } else {
            base = deadline;
        }
    }
    let name = TUNINGS
        .iter()
        .find(|(_, t)| *t == tuning)
        .map_or("?", |(name, _)| name);
    report(
        name,
        fifo,
        &cont_at[..continued],
        &stop_at[..timed],
        &mut lateness[..timed],
        &mut stops[..timed],
    );
    ExitCode::SUCCESS
}

/// Prints, on stderr, what the run got and where its error came from (see
/// the module's documentation for the lines).
fn report(
    tuning: &str,
    fifo: bool,
    cont_at: &[i64],
    stop_at: &[i64],
    lateness: &mut [i64],
    stops: &mut [i64],
) {
    let summary = |values: &mut [i64]| {
        values.sort_unstable();
        let at = |q: f64| {
            values
                .get(((values.len() as f64 - 1.0) * q) as usize)
                .copied()
        };
        format!(
            "{} {} {}",
            at(0.5).unwrap_or(0),
            at(0.99).unwrap_or(0),
            values.last().copied().unwrap_or(0)
        )
    };
    let list = |values: &[i64]| {
        values
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let policy = if fifo { "fifo" } else { "other" };
    eprintln!("tuning {tuning} policy {policy}");
    eprintln!("cont_at_ns {}", list(cont_at));
    eprintln!("stop_at_ns {}", list(stop_at));
    eprintln!("lateness_ns {}", summary(lateness));
    eprintln!("stop_ns {}", summary(stops));
}

/// Starts `copies` of the program (`pointers`: its argv, null-ended), each
/// stopped before its exec (SIGSTOP to itself), on CPU 1 when `pinned`:
/// their PIDs and pidfds.
fn start_stopped(
    copies: usize,
    pointers: &[*const libc::c_char],
    pinned: bool,
) -> Option<(Vec<i32>, Vec<i32>)> {
    let programs_cpu = only_cpu(1);
    let mut pids = vec![0; copies];
    let mut pidfds = vec![-1; copies];
    for (pid, pidfd) in pids.iter_mut().zip(pidfds.iter_mut()) {
        // SAFETY: this program starts no thread; between fork and exec the
        // child calls only sched_setaffinity, raise, execv and _exit, on
        // memory prepared here.
        match unsafe { libc::fork() } {
            -1 => {
                // Leave no program stopped forever behind us.
                for &started in pids.iter().filter(|p| **p > 0) {
                    // SAFETY: plain system calls on our own children.
                    unsafe {
                        libc::kill(started, libc::SIGKILL);
                        libc::waitpid(started, std::ptr::null_mut(), 0);
                    }
                }
                return None;
            }
            0 => unsafe {
                if pinned {
                    libc::sched_setaffinity(
                        0,
                        std::mem::size_of::<libc::cpu_set_t>(),
                        &programs_cpu,
                    );
                }
                libc::raise(libc::SIGSTOP);
                libc::execv(pointers[0], pointers.as_ptr());
                libc::_exit(127)
            },
            child => {
                let mut status = 0;
                // SAFETY: plain system calls on our own child.
                unsafe { libc::waitpid(child, &mut status, libc::WUNTRACED) };
                *pid = child;
                *pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child, 0) } as i32;
            }
        }
    }
    Some((pids, pidfds))
}

/// What the tuning asks of the kernel, after the forks so that the
/// programs keep the defaults: whether SCHED_FIFO was granted.
fn ask_the_kernel(tuning: Tuning) -> bool {
    let coordinator_cpu = only_cpu(0);
    let pinned = tuning == Tuning::Pinned;
    // SAFETY: plain system calls on this process, with valid arguments.
    unsafe {
        if tuning != Tuning::Plain {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1, 0, 0, 0);
        }
        if pinned {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &coordinator_cpu);
        }
        let param = libc::sched_param { sched_priority: 1 };
        matches!(tuning, Tuning::Fifo | Tuning::Pinned)
            && libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param)
                == 0
    }
}
