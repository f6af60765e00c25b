"""Baseline for `cargo xtask bench`: lab step 7 as the subprocess seed does it.

`python3 ex7_pipeline_deadline.py DEADLINE` runs `sleep 30 | sleep 30 |
sleep 30` with Popen, the stages joined by pipes and in a process group of
their own (the first stage's), waits on the last with
communicate(timeout=DEADLINE), and at the timeout sends SIGTERM to the
group and waits for every stage. Prints one line at the deadline and one
once all are reaped. Used only to measure against.
"""
import os
import signal
import subprocess
import sys

deadline = float(sys.argv[1])
first = subprocess.Popen(
    ["sleep", "30"], stdout=subprocess.PIPE, preexec_fn=lambda: os.setpgid(0, 0)
)
group = first.pid
stages = [first]
for _ in range(2):
    stages.append(
        subprocess.Popen(
            ["sleep", "30"],
            stdin=stages[-1].stdout,
            stdout=subprocess.PIPE,
            preexec_fn=lambda: os.setpgid(0, group),
        )
    )
# Our copies of the pipe ends, or no stage would ever see end of file.
for stage in stages[:-1]:
    stage.stdout.close()
try:
    stages[-1].communicate(timeout=deadline)
except subprocess.TimeoutExpired:
    print("deadline passed", flush=True)
    os.killpg(group, signal.SIGTERM)
for stage in stages:
    stage.wait()
print("reaped", flush=True)
