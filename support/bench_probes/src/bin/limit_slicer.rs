//! `limit_slicer COPIES SLICE_NS -- COMMAND [ARGS...]`: the smallest
//! round-robin coordinator that can exist, the machine's floor for step 5.
//!
//! It starts COPIES of COMMAND stopped (each raises SIGSTOP before its
//! exec), then runs them one at a time: SIGCONT, a timerfd armed at an
//! absolute deadline one slice after that continue, SIGSTOP, and a wait
//! for the kernel to confirm the stop before the next program is
//! continued. A program that exits mid-slice hands over at once (its pidfd
//! wakes the same `poll`). Nothing is allocated and nothing is printed in
//! the loop: every system call it makes is one a slicer cannot do without.
//!
//! At the end it prints, on stderr, where its own error comes from: how
//! late the timer woke it (deadline to running again) and how long each
//! stop took to be confirmed (SIGSTOP sent to the wait returning), as
//! `lateness_ns P50 P99 MAX` and `stop_ns P50 P99 MAX`.

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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(copies), Some(slice_ns), Some("--")) = (
        args.first().and_then(|n| n.parse::<usize>().ok()),
        args.get(1).and_then(|n| n.parse::<i64>().ok()),
        args.get(2).map(String::as_str),
    ) else {
        eprintln!("usage: limit_slicer COPIES SLICE_NS -- COMMAND [ARGS...]");
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

    let mut pids = vec![0; copies];
    let mut pidfds = vec![-1; copies];
    for (pid, pidfd) in pids.iter_mut().zip(pidfds.iter_mut()) {
        // SAFETY: this program starts no thread; between fork and exec the
        // child calls only raise, execv and _exit, on memory prepared here.
        match unsafe { libc::fork() } {
            -1 => return ExitCode::from(1),
            0 => unsafe {
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
    // SAFETY: plain system calls; the descriptor is ours.
    let timer = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) };
    if timer < 0 {
        return ExitCode::from(1);
    }
    let mut lateness = vec![0i64; MAX_SLICES];
    let mut stops = vec![0i64; MAX_SLICES];
    let mut timed = 0;
    let mut alive = copies;
    let mut next = 0;
    while alive > 0 {
        let i = next;
        next = (next + 1) % copies;
        if pids[i] == 0 {
            continue;
        }
        let deadline = now_ns() + slice_ns;
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
                    stops[timed] = now_ns() - sent;
                    timed += 1;
                }
                !libc::WIFSTOPPED(status)
            }
        };
        if exited {
            pids[i] = 0;
            alive -= 1;
        }
    }
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
    eprintln!("lateness_ns {}", summary(&mut lateness[..timed]));
    eprintln!("stop_ns {}", summary(&mut stops[..timed]));
    ExitCode::SUCCESS
}
