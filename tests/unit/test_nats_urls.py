"""A NATS URL setting naming a cluster, and the replicas cloudiag's streams get from it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from cloudiag.bus.embedded import CONFIG_FILE, redact, server_urls, write_config
from cloudiag.bus.streams import replicas_for, stream_configs
from cloudiag.settings import Settings
from cloudiag.status.report import private_nats_url


def test_a_cluster_url_setting_lists_its_servers() -> None:
    setting = "nats://t@127.0.0.1:4222, nats://t@127.0.0.1:4223,,nats://t@127.0.0.1:4224"
    assert server_urls(setting) == [
        "nats://t@127.0.0.1:4222",
        "nats://t@127.0.0.1:4223",
        "nats://t@127.0.0.1:4224",
    ]
    assert server_urls("nats://127.0.0.1:4222") == ["nats://127.0.0.1:4222"]


def test_every_server_of_a_list_is_redacted() -> None:
    shown = redact("nats://secret@127.0.0.1:4222,nats://u:pw@127.0.0.1:4223")
    assert shown == "nats://127.0.0.1:4222,nats://127.0.0.1:4223"
    assert "secret" not in shown and "pw" not in shown


def _client(servers: int) -> Any:
    return cast(Any, SimpleNamespace(servers=[object()] * servers))


def test_replicas_follow_the_cluster_up_to_three() -> None:
    assert [replicas_for(_client(n)) for n in (1, 2, 3, 5)] == [1, 2, 3, 3]


def test_every_stream_gets_the_replicas() -> None:
    assert {c.num_replicas for c in stream_configs(3)} == {3}
    assert {c.num_replicas for c in stream_configs()} == {1}


def test_status_finds_the_private_nats_of_a_data_directory(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert private_nats_url(settings) is None
    write_config(tmp_path / CONFIG_FILE, "127.0.0.1", 51113, tmp_path / "nats")
    assert private_nats_url(settings) == "nats://127.0.0.1:51113"
