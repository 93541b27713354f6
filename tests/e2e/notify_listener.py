#!/usr/bin/env python3
"""notify_listener.py SOCKET OUT DURATION - stands in for systemd's notification socket.

Binds a Unix datagram socket at SOCKET (what NOTIFY_SOCKET names) and appends each
sd_notify(3) message to OUT, one assignment per line with the time before it:
  1764040000.123456 READY=1
Exits after DURATION seconds or on SIGTERM.
"""
import os
import signal
import socket
import sys
import time

path, out, duration = sys.argv[1], sys.argv[2], float(sys.argv[3])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
if os.path.exists(path):
    os.unlink(path)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
end = time.monotonic() + duration
with open(out, "a", buffering=1) as f:
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            data = s.recv(4096)
        except socket.timeout:
            break
        now = "%.6f" % time.time()
        for line in data.decode("utf-8", "replace").splitlines():
            f.write("%s %s\n" % (now, line))
