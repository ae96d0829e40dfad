"""KB_REDIS_URL: redis+sentinel:// URLs, and Redis Cluster refused at start with one clear line (RQ does not
work on it: shown here against a real cluster-enabled redis-server)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from redis import Redis
from redis.exceptions import ResponseError
from redis.sentinel import SentinelConnectionPool

from config.redis_url import SentinelTarget, parse_sentinel_url
from config.settings import ROOT, SettingsError, load_settings
from middleware.redis_client import RedisClusterNotSupported, connect, refuse_cluster
from workers.queues import queue

from tests.support.orders_flow import poll
from tests.support.process_servers import Server, binary, free_port


def test_sentinel_url_names_sentinels_service_db_and_the_masters_credentials():
    target = parse_sentinel_url("redis+sentinel://app:s%40cret@10.0.0.1:26380,10.0.0.2,[::1]:5000/kb-master/3")
    assert target == SentinelTarget((("10.0.0.1", 26380), ("10.0.0.2", 26379), ("::1", 5000)), "kb-master", 3,
                                    "app", "s@cret")
    assert "s@cret" not in repr(target)
    assert parse_sentinel_url("redis+sentinel://h/m") == SentinelTarget((("h", 26379),), "m")


def test_a_sentinel_url_opens_a_sentinel_managed_client():
    client = connect("redis+sentinel://127.0.0.1:1,127.0.0.1:2/kb-master/2", "sentinel-pw", socket_timeout=1)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "kb-master"
    assert pool.connection_kwargs["db"] == 2 and pool.connection_kwargs["socket_timeout"] == 1
    assert [s.connection_pool.connection_kwargs["password"] for s in pool.sentinel_manager.sentinels] == \
        ["sentinel-pw", "sentinel-pw"]


@pytest.mark.parametrize("url, message", [
    ("redis+sentinel://10.0.0.1:26379", "name the master's service"),
    ("redis+sentinel:///kb-master", "no Sentinel address"),
    ("redis+sentinel://h:99999/m", "port must be a number"),
    ("redis+sentinel://h/m/zero", "must be a number"),
    ("redis+cluster://h:7000", "Redis Cluster is not supported"),
    ("rediscluster://h:7000", "Redis Cluster is not supported"),
    ("http://h:6379", "expected redis://"),
])
def test_bad_redis_urls_stop_the_start_naming_the_setting(url, message):
    with pytest.raises(SettingsError, match="KB_REDIS_URL: .*" + message):
        load_settings({"KB_REDIS_URL": url})


@pytest.fixture
def cluster_node(tmp_path):
    """A cluster-enabled redis-server owning every hash slot (a one-node Redis Cluster)."""
    port = free_port()
    conf = tmp_path / "cluster.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\ncluster-enabled yes\n"
                    f"cluster-port {free_port()}\n"  # (the default, port + 10000, may be past 65535)
                    f"cluster-config-file nodes.conf\nsave \"\"\n")
    server = Server("redis cluster node", [binary("redis-server"), str(conf)], port, tmp_path / "cluster.log")
    try:
        node = Redis(port=port, decode_responses=True)
        node.execute_command("CLUSTER ADDSLOTSRANGE", 0, 16383)
        poll(lambda: node.execute_command("CLUSTER INFO").get("cluster_state") == "ok", timeout=10, what="the cluster")
        yield port
    finally:
        server.stop()


@pytest.mark.processes
def test_rq_cannot_enqueue_on_redis_cluster_so_the_worker_refuses_it(cluster_node, tmp_path):
    url = f"redis://127.0.0.1:{cluster_node}/0"
    redis = Redis.from_url(url)
    with pytest.raises(ResponseError, match="hash to the same slot"):  # CROSSSLOT: a job's hash and its queue
        queue(redis).enqueue("workers.reconcile.reconcile")
    with pytest.raises(RedisClusterNotSupported):
        refuse_cluster(redis)
    result = subprocess.run([sys.executable, "-m", "workers", "--burst"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, env=dict(os.environ, KB_REDIS_URL=url, PYTHONPATH=str(ROOT),
                                                 KB_DATABASE_URL=f"sqlite:///{tmp_path / 'ledger.db'}"))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(
        "python -m workers: KB_REDIS_URL: Redis Cluster is not supported"), result.stderr
    assert "Traceback" not in result.stderr
