//! Demo: one `poll` on two descriptors, a timerfd and SIGCHLD's self-pipe.
//!
//! `cargo run -p ex7_pipeline_deadline --example timerfd_poll`
//!
//! Three rounds. In each, the parent forks a child into a process group of
//! its own, sets a timerfd to a deadline, and sleeps in `poll` on two
//! descriptors: the timer's, readable once it expires, and the one
//! signal-hook writes a byte to when SIGCHLD arrives. Whichever is ready
//! first decides:
//! - `sleep 0.3` against a 1.5 s deadline: SIGCHLD first. The child is
//!   reaped at 0.30 s and the timer unset; nobody waited the full 1.5 s.
//! - `sleep 30` against 0.5 s: the timer first. SIGTERM goes to the
//!   child's group while the child is still unreaped (so the group's ID
//!   cannot be anyone else's yet), and the child dies of it.
//! - a shell that stops itself (`kill -STOP $$`), against 0.5 s: its stop
//!   brings a SIGCHLD with nothing to reap. At the deadline, SIGTERM does
//!   nothing: a stopped process keeps it pending. Half a second later the
//!   parent sends SIGCONT (another SIGCHLD: it continued), and only then
//!   does the SIGTERM kill it. (The step sends SIGCONT right after
//!   SIGTERM; here they are apart so that you can see why.) A SIGKILL a
//!   second after that would be the last resort.
//!
//! What to watch for: the parent never sleeps for a fixed time and never
//! spins; it wakes once for each thing that happened. `poll`'s own timeout
//! argument would do for one deadline, but after every early wake-up (a
//! stop, say) you would have to work out how long is left; the timerfd
//! keeps the expiry for you.

use std::error::Error;
use std::ffi::{c_char, CString};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, setpgid, ForkResult, Pid};
use signal_hook::consts::SIGCHLD;
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;

/// Forks a child that makes a process group of its own and execs `argv`.
fn spawn(argv: &[*const c_char]) -> Result<Pid, Box<dyn Error>> {
    std::io::stdout().flush()?;
    // SAFETY: one thread; the child calls only setpgid, execvp and _exit.
    // It has no children, so no SIGCHLD can run our handler in it.
    match unsafe { fork() }? {
        ForkResult::Child => unsafe {
            libc::setpgid(0, 0);
            libc::execvp(argv[0], argv.as_ptr());
            libc::_exit(127)
        },
        ForkResult::Parent { child } => {
            // The same call on the parent's side: whichever runs first, the
            // group exists before the parent signals it. EACCES means the
            // child has exec'd, so it had already done it itself.
            let _ = setpgid(child, child);
            Ok(child)
        }
    }
}

fn arm(timer: &TimerFd, after: Duration) -> Result<(), Box<dyn Error>> {
    timer.set(
        Expiration::OneShot(TimeSpec::from_duration(after)),
        TimerSetTimeFlags::empty(),
    )?;
    Ok(())
}

/// Which came first after the last look: (a signal, the timer).
fn sleep_until_news(
    signals: &SignalDelivery<UnixStream, SignalOnly>,
    timer: &TimerFd,
) -> Result<(bool, bool), Box<dyn Error>> {
    loop {
        let mut fds = [
            PollFd::new(signals.get_read().as_fd(), PollFlags::POLLIN),
            PollFd::new(timer.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {
                let ready = |fd: &PollFd| fd.any().unwrap_or(false);
                return Ok((ready(&fds[0]), ready(&fds[1])));
            }
            // A signal's handler interrupted poll: look again.
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let me = getpid();
    // SIGCHLD as a descriptor: the handler writes a byte into this socket
    // pair (async-signal-safe), and `pending` below empties it.
    let (read, write) = UnixStream::pair()?;
    let mut signals = SignalDelivery::with_pipe(read, write, SignalOnly, [SIGCHLD])?;
    let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_CLOEXEC)?;

    let rounds: [(&[&str], f64); 3] = [
        (&["sleep", "0.3"], 1.5),
        (&["sleep", "30"], 0.5),
        (&["sh", "-c", "kill -STOP $$"], 0.5),
    ];
    for (round, (words, deadline)) in rounds.into_iter().enumerate() {
        let words = words
            .iter()
            .map(|w| CString::new(*w))
            .collect::<Result<Vec<_>, _>>()?;
        let mut argv: Vec<*const c_char> = words.iter().map(|w| w.as_ptr()).collect();
        argv.push(std::ptr::null());

        let start = Instant::now();
        let child = spawn(&argv)?;
        arm(&timer, Duration::from_secs_f64(deadline))?;
        println!(
            "parent {me}: round {}: child {child} runs {words:?}, deadline {deadline:.1} s",
            round + 1
        );

        // What the next expiry of the timer means: the deadline, then the
        // end of a grace period, then the last resort.
        let mut fired = 0;
        loop {
            let (signalled, timer_fired) = sleep_until_news(&signals, &timer)?;
            let at = start.elapsed().as_secs_f64();
            if timer_fired {
                timer.wait()?; // consume the expiry, or poll says "ready" forever
                fired += 1;
                // The child is not reaped yet (we would have left the
                // loop): its group ID is still ours to signal.
                let (signal, next) = match fired {
                    1 => (Signal::SIGTERM, Some(Duration::from_millis(500))),
                    2 => (Signal::SIGCONT, Some(Duration::from_secs(1))),
                    _ => (Signal::SIGKILL, None),
                };
                println!("parent {me}: timer at {at:.2} s: {signal} to process group {child}");
                let _ = killpg(child, signal);
                if let Some(after) = next {
                    arm(&timer, after)?;
                }
            }
            if signalled {
                // Empty the pipe; which signal it was does not matter here.
                signals.pending().for_each(drop);
                match waitpid(child, Some(WaitPidFlag::WNOHANG))? {
                    WaitStatus::StillAlive => {
                        println!("parent {me}: SIGCHLD at {at:.2} s, but nothing to reap (a stop or a continue)");
                    }
                    status => {
                        timer.unset()?;
                        println!("parent {me}: SIGCHLD at {at:.2} s: {status:?}");
                        break;
                    }
                }
            }
        }
    }
    Ok(())
}
