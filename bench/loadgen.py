"""Load generators, keep-alive connections: the fulfil PUT (a unique transaction id per request), or
POSTs taken in turn from a file of pre-signed requests (``SignedPosts``: the Stripe webhook).

``wrk`` (C, event loop; ``apt-get install wrk``) when installed: it costs the 2-core machine the least
CPU. Otherwise a multi-process Python client (http.client, one keep-alive connection per thread).
Both report requests/s and latency percentiles; the benchmarks also report the client's CPU use.
"""
from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from bench.common import TOKEN, BenchError
from bench.measure import CpuMeter
from bench.procs import process_tree

BODY = b'{"items":[{"itemSku":"gems_100","quantity":1}]}'
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
USERS = 1000


def fulfil_path(prefix: str, n: int) -> str:
    return f"/platform/v2/admin/namespaces/demo/users/u{n % USERS}/fulfillments/{prefix}-{n}"


@dataclass(frozen=True)
class SignedPosts:
    """POST ``path``, the requests taken in turn from ``file``: one a line, ``<header value>\t<body>``
    (the body one line of JSON). Each client thread / connection group takes its own lines; one that
    runs out starts again from its first line (``wrapped`` counts those repeats). ``header`` "": no
    extra header is sent (the requests carry their signature in the body; the lines' first field is
    empty). Several headers: their names comma-separated in ``header`` ("webhook-id,webhook-signature"),
    and each line has their values in that order, tab-separated, before the body."""
    path: str
    header: str
    file: str

    @property
    def names(self) -> tuple[str, ...]:
        """The headers each request sets from its line (none when ``header`` is "")."""
        return tuple(name for name in self.header.split(",") if name)

    @property
    def fields(self) -> int:
        """Tab-separated fields before the body on each line (at least one, empty when no header is sent)."""
        return max(1, len(self.names))


@dataclass
class LoadResult:
    client: str
    connections: int
    requests: int                     # answers received
    errors: int                       # transport errors + answers >= 400
    seconds: float
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    client_cpu: float | None = None   # cores the client itself used during the run
    sent: int | None = None           # requests written (SignedPosts: answers + those in flight at the end)
    wrapped: int | None = None        # SignedPosts: requests that repeated a line already sent

    def as_dict(self) -> dict:
        return asdict(self)


def have_wrk() -> bool:
    """wrk is on PATH (and not switched off with KB_BENCH_NO_WRK=1)."""
    return shutil.which("wrk") is not None and os.environ.get("KB_BENCH_NO_WRK") != "1"


# ------------------------------------------------------------------------------------------------ wrk
WRK_SCRIPT = r"""
wrk.method = "PUT"
wrk.body = '%(body)s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
local threads = 0
local counter = 0
local prefix = ""
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  prefix = args[1] .. "-" .. tid
end
function request()
  counter = counter + 1
  local path = "/platform/v2/admin/namespaces/demo/users/u" .. (counter %% %(users)d) ..
               "/fulfillments/" .. prefix .. "-" .. counter
  return wrk.format(nil, path)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%%d,"duration_us":%%d,"errors":%%d,"status_errors":%%d,"p50_us":%%d,"p99_us":%%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


# Lines (header values TAB body) of the file, thread k of n keeps lines k, k+n, k+2n...: loaded in init(),
# before wrk starts its clock. ``sent`` and ``wrapped`` are globals so done() can read them per thread.
WRK_SIGNED_SCRIPT = r"""
wrk.method = "POST"
wrk.path = "%(path)s"
wrk.headers["Content-Type"] = "application/json"
local threads = {}
local values, bodies, count, at = {}, {}, 0, 0
sent, wrapped = 0, 0
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args)
  local nthreads, k = tonumber(args[2]), 0
  for line in io.lines(args[1]) do
    if k %% nthreads == tid - 1 then
      local fields, start = {}, 1
      for i = 1, %(fields)d do
        local tab = string.find(line, "\t", start, true)
        fields[i] = string.sub(line, start, tab - 1)
        start = tab + 1
      end
      count = count + 1
      values[count] = fields
      bodies[count] = string.sub(line, start)
    end
    k = k + 1
  end
end
function request()
  at = at + 1
  if at > count then at = 1 end
  if sent >= count then wrapped = wrapped + 1 end
  sent = sent + 1
%(set_header)s  return wrk.format(nil, nil, nil, bodies[at])
end
function done(summary, latency, requests)
  local e, s, w = summary.errors, 0, 0
  for _, thread in ipairs(threads) do
    s = s + thread:get("sent")
    w = w + thread:get("wrapped")
  end
  io.write(string.format(
    'RESULT {"requests":%%d,"duration_us":%%d,"errors":%%d,"status_errors":%%d,"p50_us":%%d,"p99_us":%%d,' ..
    '"sent":%%d,"wrapped":%%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), s, w))
end
"""


def run_wrk(base_url: str, prefix: str, seconds: float, connections: int, threads: int = 1,
            posts: SignedPosts | None = None) -> LoadResult:
    """Time-bounded wrk run against the fulfil PUT (every request a new transaction id), or ``posts``."""
    if posts is None:
        script, extra = WRK_SCRIPT % {"body": BODY.decode(), "token": TOKEN, "users": USERS}, [prefix]
    else:
        set_header = "".join(f'  wrk.headers["{name}"] = values[at][{i}]\n' for i, name in enumerate(posts.names, 1))
        script = WRK_SIGNED_SCRIPT % {"path": posts.path, "set_header": set_header, "fields": posts.fields}
        extra = [posts.file, str(threads)]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    try:
        args = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
                "--timeout", "10s", "-s", fh.name, base_url, "--", *extra]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            raise BenchError("wrk did not finish in time") from None
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, reaped: what its threads used
        used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        client_cpu = round(used / (time.perf_counter() - t0), 2)
    finally:
        os.unlink(fh.name)
    out = done.stdout + done.stderr
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}): {out[-500:]}")
    data = json.loads(line[len("RESULT "):])
    secs = data["duration_us"] / 1e6
    return LoadResult("wrk", connections, data["requests"], data["errors"] + data["status_errors"], round(secs, 3),
                      round(data["requests"] / secs, 1), data["p50_us"] / 1000, data["p99_us"] / 1000, client_cpu,
                      data.get("sent"), data.get("wrapped"))


# ------------------------------------------------------------------------------------------------ Python
def _signed_lines(posts: SignedPosts, worker: int, workers: int) -> list[tuple[dict[str, str], bytes]]:
    """The (headers, body) pairs of client worker ``worker`` of ``workers``: every workers-th line."""
    out, names = [], posts.names
    with open(posts.file, "rb") as fh:
        for k, line in enumerate(fh):
            if k % workers == worker:
                *values, body = line.rstrip(b"\n").split(b"\t", posts.fields)
                out.append((dict(zip(names, (v.decode() for v in values), strict=False)), body))
    return out


def _client_process(url: str, prefix: str, threads: int, seconds: float | None, per_thread: int | None,
                    ready, go, out, posts: SignedPosts | None = None, process: int = 0, processes: int = 1) -> None:
    import threading
    parts = urlsplit(url)
    results = []

    def worker(t: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        n, errors, latencies = 0, 0, []
        lines = _signed_lines(posts, process * threads + t, processes * threads) if posts else None
        go.wait()
        deadline = time.perf_counter() + seconds if seconds else None
        while (per_thread is None or n < per_thread) and (deadline is None or time.perf_counter() < deadline):
            t0 = time.perf_counter()
            try:
                if lines is None:
                    conn.request("PUT", fulfil_path(f"{prefix}-{t}", n), BODY, HEADERS)
                else:
                    headers, body = lines[n % len(lines)]
                    conn.request("POST", posts.path, body, {**headers, "Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status >= 400:
                    errors += 1
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            latencies.append(time.perf_counter() - t0)
            n += 1
        conn.close()
        results.append((n, errors, latencies, max(0, n - len(lines)) if lines is not None else 0))

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    ready.release()
    for th in pool:
        th.join()
    out.put(results)


def run_python(base_url: str, prefix: str, connections: int, seconds: float | None = None,
               total: int | None = None, processes: int = 2, on_start=None,
               posts: SignedPosts | None = None) -> LoadResult:
    """The fallback client: ``processes`` processes x threads = ``connections``; time- or count-bounded."""
    if (seconds is None) == (total is None):
        raise ValueError("give seconds or total")
    processes = max(1, min(processes, connections))
    ctx = multiprocessing.get_context("spawn")
    ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    threads = connections // processes
    per_thread = None if total is None else -(-total // (threads * processes))
    procs = [ctx.Process(target=_client_process, daemon=True,
                         args=(base_url, f"{prefix}-{p}", threads, seconds, per_thread, ready, go, out, posts, p,
                               processes))
             for p in range(processes)]
    for p in procs:
        p.start()
    for _ in procs:
        if not ready.acquire(timeout=60):
            raise BenchError("load generator processes did not start")
    meter = CpuMeter({"client": [pid for p in procs for pid in process_tree(p.pid)]}).start()
    t0 = time.perf_counter()
    go.set()
    batches = [out.get(timeout=(seconds or 0) + 600) for _ in procs]
    elapsed = time.perf_counter() - t0
    client_cpu = meter.stop()["client"]
    for p in procs:
        p.join(10)
    rows = [r for batch in batches for r in batch]
    latencies = sorted(x for _, _, lat, _ in rows for x in lat)
    n = sum(r[0] for r in rows)
    pct = (lambda q: round(latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000, 2)) \
        if latencies else (lambda q: None)
    return LoadResult("python", threads * processes, n, sum(r[1] for r in rows), round(elapsed, 3),
                      round(n / elapsed, 1), pct(0.50), pct(0.99), client_cpu, n, sum(r[3] for r in rows))


def run_load(base_url: str, prefix: str, seconds: float, connections: int, use_wrk: bool | None = None,
             posts: SignedPosts | None = None) -> LoadResult:
    if use_wrk is None:
        use_wrk = have_wrk()
    if use_wrk:
        return run_wrk(base_url, prefix, seconds, connections, posts=posts)
    return run_python(base_url, prefix, connections, seconds=seconds, posts=posts)
