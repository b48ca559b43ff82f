#!/usr/bin/env python3
"""Small-blob push benchmark for an OCI Distribution registry. Run by hand:

  tests/bench/blobs.py --url https://127.0.0.1:PORT --cacert PEM --repo NAME
                       [--count 500] [--size 16384] [--parallel P]
                       [--new-connection] [--seed S] [--workers thread|process]

Pushes COUNT distinct blobs of SIZE random bytes the way docker pushes a
small layer: POST /v2/NAME/blobs/uploads/ (202 + Location), then one
PUT LOCATION?digest=sha256:HEX with the whole body (201). The blobs are
made and hashed before the clock starts. With --parallel P the blobs are
split among P workers, each with its own keep-alive connection. Workers
are threads by default: the client's time goes to TLS and socket calls,
which release the GIL, and on a 2-core machine 8 threads measured as fast
as or faster than 8 processes (which take more CPU from the server);
--workers process to compare. With --new-connection every blob uses
a fresh TLS connection (full handshake, no session resumption), closed
after its PUT: a client without keep-alive.

The time is wall clock from the first POST to the last 201. Afterwards
(untimed) one HEAD /v2/NAME/blobs/DIGEST per blob checks that each is there
with its size. Prints one line:

  blobs <count> seconds <s> blobs_per_s <r>

Any failure prints one line on stderr and exits 1. Standard library only.
"""

import argparse
import hashlib
import http.client
import multiprocessing
import os
import queue
import random
import ssl
import sys
import threading
import time
import urllib.parse


class BenchError(Exception):
    pass


def parse_args():
    p = argparse.ArgumentParser(description="OCI small-blob push benchmark")
    p.add_argument("--url", required=True, help="https://127.0.0.1:PORT")
    p.add_argument("--cacert", help="PEM file of the CA (or self-signed cert)")
    p.add_argument("--repo", required=True, help="repository name")
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--size", type=int, default=16384)
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--new-connection", action="store_true",
                   help="a fresh TLS connection per blob (no keep-alive)")
    p.add_argument("--seed", type=int, help="make the blobs from this seed")
    p.add_argument("--workers", choices=("process", "thread"),
                   default="thread", help="kind of parallel worker")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="socket timeout in seconds")
    a = p.parse_args()
    if a.count < 1 or a.size < 0 or a.parallel < 1:
        p.error("--count and --parallel must be >= 1, --size >= 0")
    u = urllib.parse.urlsplit(a.url)
    if u.scheme not in ("https", "http") or not u.hostname:
        p.error("--url must be https://HOST:PORT")
    if u.scheme == "https" and not a.cacert:
        p.error("--cacert is needed for https")
    a.scheme = u.scheme
    a.host = u.hostname
    a.port = u.port or (443 if u.scheme == "https" else 80)
    a.prefix = u.path.rstrip("/")
    return a


def make_blobs(count, size, seed):
    rng = random.Random(seed) if seed is not None else None
    blobs = []
    for _ in range(count):
        data = rng.randbytes(size) if rng else os.urandom(size)
        blobs.append((data, "sha256:" + hashlib.sha256(data).hexdigest()))
    if len({d for _, d in blobs}) != count:
        raise BenchError("generated blobs are not distinct")
    return blobs


class Client:
    """Opens connections to the registry; one per worker (or per blob)."""

    def __init__(self, a):
        self.a = a
        self.ctx = None
        if a.scheme == "https":
            self.ctx = ssl.create_default_context(cafile=a.cacert)
            # check_hostname is on: the name checked is a.host, e.g. the
            # IP 127.0.0.1 against the certificate's IP SAN.

    def connect(self):
        a = self.a
        if self.ctx:
            return http.client.HTTPSConnection(a.host, a.port, timeout=a.timeout,
                                               context=self.ctx)
        return http.client.HTTPConnection(a.host, a.port, timeout=a.timeout)

    def target(self, location):
        """Request target for a Location header, relative or absolute."""
        u = urllib.parse.urlsplit(location)
        if u.scheme or u.netloc:
            if u.hostname != self.a.host or (u.port or self.a.port) != self.a.port:
                raise BenchError(f"Location points elsewhere: {location}")
        path = u.path or "/"
        if not path.startswith("/"):
            # relative to the uploads URL (not seen in practice)
            path = f"{self.a.prefix}/v2/{self.a.repo}/blobs/uploads/" + path
        return path + ("?" + u.query if u.query else "")


def request(conn, method, target, body=None, headers=None):
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        payload = resp.read()  # read fully before the connection is reused
    except (OSError, http.client.HTTPException) as e:
        raise BenchError(f"{method} {target}: {type(e).__name__}: {e}") from None
    return resp, payload


def push_one(cl, conn, data, digest):
    a = cl.a
    upl = f"{a.prefix}/v2/{a.repo}/blobs/uploads/"
    resp, body = request(conn, "POST", upl, headers={"Content-Length": "0"})
    if resp.status != 202:
        raise BenchError(f"POST {upl}: status {resp.status}: {body[:200]!r}")
    loc = resp.getheader("Location")
    if not loc:
        raise BenchError(f"POST {upl}: 202 without Location")
    t = cl.target(loc)
    t += ("&" if "?" in t else "?") + "digest=" + digest
    resp, body = request(conn, "PUT", t, body=data, headers={
        "Content-Type": "application/octet-stream",
        "Content-Length": str(len(data)),
    })
    if resp.status != 201:
        raise BenchError(f"PUT {t}: status {resp.status}: {body[:200]!r}")


def worker(a, blobs, start, stop):
    """Pushes blobs; returns (ok, t_first_post, t_last_201, error)."""
    cl = Client(a)
    ok, t0, t1 = 0, None, None
    conn = None
    try:
        start.wait()
        t0 = time.perf_counter()  # CLOCK_MONOTONIC: same clock in all processes
        for data, digest in blobs:
            if stop.is_set():
                break
            if conn is None:
                conn = cl.connect()
            push_one(cl, conn, data, digest)
            ok += 1
            t1 = time.perf_counter()
            if a.new_connection:
                conn.close()
                conn = None
    except BenchError as e:
        stop.set()
        return ok, t0, t1, str(e)
    except Exception as e:  # noqa: BLE001 - report anything as one line
        stop.set()
        return ok, t0, t1, f"{type(e).__name__}: {e}"
    finally:
        if conn is not None:
            conn.close()
    return ok, t0, t1, None


# Process workers inherit the blobs through fork: nothing is pickled.
_BLOBS = None


def _proc_main(a, idx, start, stop, out):
    out.put((idx, worker(a, _BLOBS[idx::a.parallel], start, stop)))


def run(a, blobs):
    global _BLOBS
    P = a.parallel
    if P == 1:
        ev = threading.Event()
        ev.set()
        return [worker(a, blobs, ev, threading.Event())]
    if a.workers == "thread":
        start, stop = threading.Event(), threading.Event()
        res = [None] * P

        def th(i):
            res[i] = worker(a, blobs[i::P], start, stop)

        ts = [threading.Thread(target=th, args=(i,)) for i in range(P)]
        for t in ts:
            t.start()
        start.set()
        for t in ts:
            t.join()
        return res
    _BLOBS = blobs
    mp = multiprocessing.get_context("fork")
    start, stop, out = mp.Event(), mp.Event(), mp.Queue()
    ps = [mp.Process(target=_proc_main, args=(a, i, start, stop, out))
          for i in range(P)]
    for p in ps:
        p.start()
    start.set()
    res = [None] * P
    got = 0
    while got < P:
        try:
            i, r = out.get(timeout=1.0)
        except queue.Empty:
            if not any(p.is_alive() for p in ps) and out.empty():
                break
            continue
        res[i] = r
        got += 1
    for p in ps:
        p.join()
    if got < P:
        raise BenchError("a worker process died")
    return res


def verify(a, blobs):
    cl = Client(a)
    conn = cl.connect()
    try:
        for data, digest in blobs:
            t = f"{a.prefix}/v2/{a.repo}/blobs/{digest}"
            resp, _ = request(conn, "HEAD", t)
            if resp.status != 200:
                raise BenchError(f"HEAD {t}: status {resp.status}")
            n = resp.getheader("Content-Length")
            if n is not None and int(n) != len(data):
                raise BenchError(f"HEAD {t}: Content-Length {n}, pushed {len(data)}")
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = cl.connect()
    finally:
        conn.close()


def main():
    a = parse_args()
    try:
        blobs = make_blobs(a.count, a.size, a.seed)
        res = run(a, blobs)
        errs = [r[3] for r in res if r[3]]
        if errs:
            raise BenchError(errs[0])
        ok = sum(r[0] for r in res)
        if ok != a.count:
            raise BenchError(f"{ok} of {a.count} PUTs answered 201")
        t0 = min(r[1] for r in res if r[1] is not None)
        t1 = max(r[2] for r in res if r[2] is not None)
        verify(a, blobs)
    except BenchError as e:
        print(f"blobs.py: error: {e}", file=sys.stderr)
        sys.exit(1)
    secs = t1 - t0
    print(f"blobs {ok} seconds {secs:.3f} blobs_per_s {ok / secs:.1f}")


if __name__ == "__main__":
    main()
