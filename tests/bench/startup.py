#!/usr/bin/env python3
"""Start-up time of a registry: starts the command given after "--" and
polls URL (HTTPS, verified with --cacert) every 2 ms until it answers 200.
Prints the seconds from just before the exec to that answer; the server
keeps running and its pid goes to --pidfile. Used by compare.sh."""
import argparse
import http.client
import ssl
import subprocess
import sys
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--cacert", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        sys.exit("startup.py: no command given")
    u = urllib.parse.urlsplit(a.url)
    ctx = ssl.create_default_context(cafile=a.cacert)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(a.pidfile, "w") as f:
        f.write(f"{p.pid}\n")
    while time.monotonic() - t0 < a.timeout:
        if p.poll() is not None:
            sys.exit(f"startup.py: server exited with {p.returncode}")
        try:
            c = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=1)
            c.request("GET", u.path or "/")
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                print(f"{time.monotonic() - t0:.4f}")
                return
        except OSError:
            pass
        time.sleep(0.002)
    sys.exit("startup.py: no answer before the timeout")


if __name__ == "__main__":
    main()
