"""Baseline for `cargo xtask bench`: lab step 9 as the socket seed does it.

`python3 ex9_socket_server.py CLIENTS LINES` starts a TCP server thread on
127.0.0.1 (port 0), which answers each connection in a thread of its own
with `server got: LINE`, and CLIENTS client threads that each send LINES
lines, one round trip at a time. Prints the number of replies. Used only
to measure against.
"""
import socket
import sys
import threading

clients, lines = int(sys.argv[1]), int(sys.argv[2])
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.bind(("127.0.0.1", 0))
server.listen(128)
port = server.getsockname()[1]


def answer(conn):
    with conn, conn.makefile("rwb") as stream:
        for line in stream:
            stream.write(b"server got: " + line)
            stream.flush()


def serve():
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        threading.Thread(target=answer, args=(conn,), daemon=True).start()


replies = []
lock = threading.Lock()


def client(n):
    with socket.create_connection(("127.0.0.1", port)) as conn, conn.makefile("rwb") as stream:
        for j in range(1, lines + 1):
            stream.write(b"client %d line %d\n" % (n, j))
            stream.flush()
            reply = stream.readline()
            with lock:
                replies.append(reply)


threading.Thread(target=serve, daemon=True).start()
threads = [threading.Thread(target=client, args=(n,)) for n in range(1, clients + 1)]
for t in threads:
    t.start()
for t in threads:
    t.join()
server.close()
print(len(replies))
