#!/usr/bin/env python3
"""The stall test's watcher: follows P:{m}:current of each model and reports every move of the
live block. It polls GET current every 20 ms and also listens on P:{m}:updates (a stale publisher's
backwards switch can be undone by the next publication within a poll interval; its announcement is
still seen). Each version number seen is mapped to its meta's block. Runs until STOP_FILE exists,
then checks that every model's sequence of live blocks never decreases and prints the sequences.
Usage: stall_watch.py HOST PORT PREFIX STOP_FILE MODEL...   (exit 1 with FAIL on a backwards move)"""
import os, socket, sys, threading, time

host, port, prefix, stop_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
models = sys.argv[5:]


class Resp:
    """A minimal RESP2 client (the test machines have redis-cli but not the Python module)."""

    def __init__(self):
        self.s = socket.create_connection((host, port))
        self.f = self.s.makefile("rb")

    def send(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)

    def read(self):
        line = self.f.readline()
        if not line:
            raise EOFError("redis closed the connection")
        t, rest = line[:1], line[1:-2]
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2].decode("latin-1")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        if t == b":":
            return int(rest)
        if t == b"-":
            raise RuntimeError(rest.decode())
        return rest.decode()

    def cmd(self, *args):
        self.send(*args)
        return self.read()


# (model, source) -> [(version, block)]: the polled and the announced sequence are each in the
# order of the switches, but not with each other (a poll can overtake an announcement)
seen = {(m, src): [] for m in models for src in ("current", "announced")}
lock = threading.Lock()
meta = Resp()


def note(m, source, v):
    with lock:
        b = meta.cmd("HGET", "%s:{%s}:v%s:meta" % (prefix, m, v), "block")
        b = int(b) if b is not None else None
        hist = seen[(m, source)]
        if not hist or hist[-1][0] != int(v):
            hist.append((int(v), b))


def listen():
    sub = Resp()
    sub.send("SUBSCRIBE", *["%s:{%s}:updates" % (prefix, m) for m in models])
    while True:
        msg = sub.read()
        if isinstance(msg, list) and msg[0] == "message":
            m = msg[1][len(prefix) + 2:-len("}:updates")]
            note(m, "announced", msg[2])


threading.Thread(target=listen, daemon=True).start()
poll = Resp()
while not os.path.exists(stop_file):
    for m in models:
        v = poll.cmd("GET", "%s:{%s}:current" % (prefix, m))
        if v is not None:
            note(m, "current", v)
    time.sleep(0.02)
for m in models:  # the last state, after every worker stopped
    v = poll.cmd("GET", "%s:{%s}:current" % (prefix, m))
    if v is not None:
        note(m, "current", v)

bad = []
for (m, src), hist in sorted(seen.items()):
    print("%s %s: %s" % (m, src, " ".join("v%d:block %s" % vb for vb in hist)))
    if any(b is None for _, b in hist):
        bad.append("%s: a version was %s without meta" % (m, src))
    for (v0, b0), (v1, b1) in zip(hist, hist[1:]):
        if b0 is not None and b1 is not None and b1 < b0:
            bad.append("%s (%s): live block went back from %d (v%d) to %d (v%d)" % (m, src, b0, v0, b1, v1))
    if src == "current" and not hist:
        bad.append("%s: never live" % m)
if bad:
    sys.exit("FAIL:\n  " + "\n  ".join(bad))
print("current never moved back")
