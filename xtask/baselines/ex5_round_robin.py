"""Baseline for `cargo xtask bench`: lab step 5 as the seed notebook did it.

Starts every command with Popen, stops them all with SIGSTOP, then, while
any is alive, continues each in turn, sleeps one slice with time.sleep,
and stops it again. Usage: ex5_round_robin.py SLICE_SECONDS COPIES -- CMD...
"""
import signal
import sys
import time
from subprocess import Popen


def main():
    slice_seconds = float(sys.argv[1])
    copies = int(sys.argv[2])
    command = sys.argv[sys.argv.index("--") + 1:]
    processes = [Popen(command) for _ in range(copies)]
    for process in processes:
        process.send_signal(signal.SIGSTOP)
    while any(process.poll() is None for process in processes):
        for process in processes:
            if process.poll() is not None:
                continue
            process.send_signal(signal.SIGCONT)
            time.sleep(slice_seconds)
            if process.poll() is None:
                process.send_signal(signal.SIGSTOP)
    for process in processes:
        process.wait()


if __name__ == "__main__":
    main()
