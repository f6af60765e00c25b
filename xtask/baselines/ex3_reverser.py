"""Baseline for `cargo xtask bench`: lab step 3 as the lab describes it.

The parent reads phrases from stdin and sends each to a child through a
multiprocessing.Pipe; the child reverses it and sends it back; the parent
prints it. `end` or end of input stops. Used only to measure against.
"""
import sys
from multiprocessing import Pipe, Process


def child(conn, parent_end):
    # The fork copied the parent's end too; while it is open here, recv()
    # below would never raise EOFError.
    parent_end.close()
    while True:
        try:
            phrase = conn.recv()
        except EOFError:
            break
        conn.send(phrase[::-1])
    conn.close()


def main():
    parent_conn, child_conn = Pipe()
    worker = Process(target=child, args=(child_conn, parent_conn))
    worker.start()
    child_conn.close()
    out = sys.stdout
    for line in sys.stdin:
        phrase = line.rstrip("\n")
        if phrase == "end":
            break
        parent_conn.send(phrase)
        out.write(parent_conn.recv() + "\n")
    parent_conn.close()
    worker.join()


if __name__ == "__main__":
    main()
