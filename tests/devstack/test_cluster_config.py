"""What a cluster node is told: LiveKit's multi-node mode is only its ``redis:`` section."""

from __future__ import annotations

from stream_devstack.livekit_config import ServerPorts, server_config, to_yaml


def test_a_node_with_redis_gets_the_redis_section() -> None:
    config = server_config(ServerPorts(7880, 7881, 7882), api_key="k", api_secret="s" * 32,
                           webhook_urls=["http://127.0.0.1:9/hook"], log_level="warn",
                           redis_address="127.0.0.1:6390")
    assert config["redis"] == {"address": "127.0.0.1:6390"}
    assert '"redis":\n  "address": "127.0.0.1:6390"' in to_yaml(config)


def test_a_single_node_has_no_redis_section() -> None:
    config = server_config(ServerPorts(7880, 7881, 7882), api_key="k", api_secret="s" * 32,
                           webhook_urls=[], log_level="warn")
    assert "redis" not in config and "webhook" not in config


def test_webhook_events_become_livekits_include_filter() -> None:
    config = server_config(ServerPorts(7880, 7881, 7882), api_key="k", api_secret="s" * 32,
                           webhook_urls=["http://127.0.0.1:9/hook"], log_level="warn",
                           webhook_events={"participant_joined", "room_finished"})
    assert config["webhook"]["filter_params"] == {
        "include_events": ["participant_joined", "room_finished"]}
    unfiltered = server_config(ServerPorts(7880, 7881, 7882), api_key="k",
                               api_secret="s" * 32, webhook_urls=["http://127.0.0.1:9/hook"],
                               log_level="warn")
    assert "filter_params" not in unfiltered["webhook"]
