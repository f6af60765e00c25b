//! The case's script: each step (send a line, wait for one, signal a
//! process, start one, sleep, measure an idle window) carried out.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn do_step(
    step: &crate::grade::case::Step,
    running: &mut [Running],
    bindings: &mut Bindings,
    deadline: Instant,
    supervisor: &Supervisor,
    jail: &Jail,
    scratch: &Scratch,
    case: &Case,
    start: Instant,
) -> Result<(), String> {
    let target = step
        .to
        .clone()
        .unwrap_or_else(|| running[0].spec.name.clone());
    let find = |running: &mut [Running], name: &str| -> Result<usize, String> {
        running
            .iter()
            .position(|r| r.spec.name == name)
            .ok_or(format!("no process {name:?}"))
    };
    if let Some(pattern) = &step.wait_for {
        let index = find(running, &target)?;
        let pattern = LinePattern::new(pattern)?;
        // A limit reached meanwhile ends the wait: the case is stopped.
        let running: &[Running] = running;
        let stop = || over_limits(running, jail, supervisor);
        return wait_for_line(&running[index].stdout, &pattern, bindings, deadline, &stop)
            .map_err(|why| format!("waiting on {target}'s stdout for `{pattern}`: {why}"));
    }
    if let Some(line) = &step.send {
        let index = find(running, &target)?;
        let stdin = running[index]
            .stdin
            .as_mut()
            .ok_or(format!("{target}'s stdin is closed"))?;
        return stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot send {line:?} to {target}: {e}"));
    }
    if let Some(name) = &step.signal {
        let signal = signal_by_name(name)?;
        if let Some(binding) = target.strip_prefix("pid:") {
            let pid = *bindings
                .get(binding)
                .ok_or(format!("no PID is bound to {binding:?} yet"))?;
            // A PID comes from the program's output: never trust it. Only a
            // process this case started may be signalled, not the keeper,
            // one of its threads, or (without a PID namespace, where such
            // a PID could name one) anyone else on the machine.
            if !descendants().iter().any(|p| p.pid == pid) {
                return Err(format!(
                    "refusing to send {name} to {pid} ({{pid:{binding}}}): it is not a process this case started"
                ));
            }
            let _ = kill(Pid::from_raw(pid), signal);
        } else if let Some(name) = target.strip_prefix("group:") {
            let index = find(running, name)?;
            let pid = running[index]
                .pid
                .ok_or(format!("{name} has not started"))?;
            let _ = killpg(Pid::from_raw(pid), signal);
        } else {
            let index = find(running, &target)?;
            let pid = running[index]
                .pid
                .ok_or(format!("{target} has not started"))?;
            let _ = kill(Pid::from_raw(pid), signal);
        }
        return Ok(());
    }
    if let Some(sleep) = &step.sleep {
        let pause = parse_duration(sleep)?;
        let pause = pause.min(deadline.saturating_duration_since(Instant::now()));
        if !step.idle {
            std::thread::sleep(pause);
            return Ok(());
        }
        // An idle window: every process of the case measured at both ends
        // (the same ones, and any that appeared, by the end's list).
        let window = IDLE_WINDOWS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as i32;
        let pids = || descendants().iter().map(|p| p.pid).collect::<Vec<_>>();
        let measure = |kind: EventKind| {
            let at = start.elapsed().as_secs_f64() * 1e3;
            supervisor
                .shared
                .lock()
                .unwrap()
                .measure_idle(kind, window, at, &pids());
        };
        measure(EventKind::IdleFrom);
        std::thread::sleep(pause);
        measure(EventKind::IdleTo);
        return Ok(());
    }
    if step.close_stdin {
        let index = find(running, &target)?;
        running[index].stdin = None;
        return Ok(());
    }
    if let Some(name) = &step.start {
        let index = find(running, name)?;
        return spawn(&mut running[index], supervisor, scratch, case, start);
    }
    Ok(())
}

fn wait_for_line(
    shared: &Shared,
    pattern: &LinePattern,
    bindings: &mut Bindings,
    deadline: Instant,
    stop: &dyn Fn() -> Option<String>,
) -> Result<(), String> {
    let (lock, ready) = &**shared;
    loop {
        {
            let mut stream = lock.lock().unwrap();
            for index in 0..stream.lines.len() {
                if !stream.claimed[index] && pattern.matches(&stream.lines[index].text, bindings) {
                    stream.claimed[index] = true;
                    return Ok(());
                }
            }
            if stream.closed {
                return Err("the output ended first".to_string());
            }
            if stream.capped {
                return Err("the output went past its limit first".to_string());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("no such line before the time limit".to_string());
            }
            let _ = ready
                .wait_timeout(stream, left.min(Duration::from_millis(100)))
                .unwrap();
        }
        // Not holding the stream: `stop` reads every stream.
        if let Some(why) = stop() {
            return Err(format!("the case was stopped first ({why})"));
        }
    }
}
