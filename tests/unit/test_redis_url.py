"""REDIS_URL forms: one server, or the nodes of a Redis Cluster."""

from __future__ import annotations

import pytest

from mailgate.store.redis import parse_redis_url


def test_one_server_url_is_passed_through_unchanged() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://u:p@h:6380/2", "unix:///run/redis.sock"):
        target = parse_redis_url(url)
        assert target.url == url
        assert not target.cluster


def test_several_nodes_make_a_cluster() -> None:
    target = parse_redis_url("redis://a:7000, redis://b:7001,c:7002")
    assert target.cluster
    assert target.nodes == (("a", 7000), ("b", 7001), ("c", 7002))
    assert target.url == "redis://a:7000"


def test_cluster_option_on_one_node() -> None:
    target = parse_redis_url("redis://:secret@seed:7000/?cluster=true&ssl_cert_reqs=none")
    assert target.cluster
    assert target.nodes == (("seed", 7000),)
    assert "cluster" not in target.url and "ssl_cert_reqs=none" in target.url
    assert "secret" in target.url  # the password reaches the cluster client


def test_cluster_option_false_and_default_port() -> None:
    assert not parse_redis_url("redis://h:1/0?cluster=false").cluster
    assert parse_redis_url("redis://h:1/0?cluster=false").url == "redis://h:1/0"
    assert parse_redis_url("a,b").nodes == (("a", 6379), ("b", 6379))


@pytest.mark.parametrize("bad", ["", " , ", "redis://:7000,redis://b:1"])
def test_unusable_values_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="REDIS_URL"):
        parse_redis_url(bad)
