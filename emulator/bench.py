"""Tiny load generator for a running emulator: credits/s from N keep-alive client threads.

    python -m emulator.bench --url http://127.0.0.1:8100 --threads 8 --seconds 5

Loopback only; bounded in time and count. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from urllib.parse import urlsplit


def run(url: str, key: str = "kraty_sk_demo", currency: str = "gems", threads: int = 8,
        seconds: float = 5.0, max_requests: int = 1_000_000) -> dict:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("bench targets loopback only")
    deadline = time.perf_counter() + seconds
    counts, errors, latencies = [0] * threads, [0] * threads, [[] for _ in range(threads)]
    per_thread = max_requests // threads
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        n = 0
        while n < per_thread and time.perf_counter() < deadline:
            body = json.dumps({"amount": 1, "reason": "bench", "sourceRefId": f"t{i}-{n}",
                               "idempotencyKey": f"bench-{i}-{n}-{id(conn)}"})
            t0 = time.perf_counter()
            try:
                conn.request("POST", f"/server/v1/players/bench-{i % 64}/wallet/{currency}/credit",
                             body, headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    errors[i] += 1
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            latencies[i].append(time.perf_counter() - t0)
            n += 1
        counts[i] = n
        conn.close()

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    lat = sorted(x for xs in latencies for x in xs)
    total = sum(counts)
    return {"requests": total, "errors": sum(errors), "seconds": round(elapsed, 3),
            "per_second": round(total / elapsed, 1), "threads": threads,
            "p50_ms": round(lat[len(lat) // 2] * 1000, 2) if lat else None,
            "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2) if lat else None}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m emulator.bench")
    p.add_argument("--url", default="http://127.0.0.1:8100")
    p.add_argument("--key", default="kraty_sk_demo")
    p.add_argument("--currency", default="gems")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args(argv)
    print(json.dumps(run(args.url, args.key, args.currency, args.threads, args.seconds)))


if __name__ == "__main__":
    main()
