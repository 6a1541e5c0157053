"""Scale-out pieces without a cluster: placement options, the gateway count policy, the
advertised gateway address, metric export and the cluster launcher config."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import ray
import yaml

from liveshop import metrics
from liveshop.actors import wiring
from liveshop.config import AUTO_PLACEMENT, Settings, parse_placement
from liveshop.mesh.directory import configured
from liveshop.mesh.options import HOST_ACTOR_OPTIONS, placed
from liveshop.serve import scaling
from liveshop.serve.gateway import advertised_url
from liveshop.stack import ClusterError, Stack
from liveshop.storage.embedded import EmbeddedPostgres

ROOT = Path(__file__).resolve().parents[2]


def test_entity_hosts_ask_for_actor_nodes_only_where_the_cluster_has_them() -> None:
    plain = placed(HOST_ACTOR_OPTIONS, Settings())
    assert plain == HOST_ACTOR_OPTIONS and "resources" not in plain
    on_nodes = placed(HOST_ACTOR_OPTIONS, Settings(placement=("actors",)))
    assert on_nodes["resources"] == {"actors": 1}
    assert on_nodes["scheduling_strategy"] == "SPREAD"
    assert on_nodes["max_restarts"] == -1 and on_nodes["lifetime"] == "detached"


def test_hosts_follow_the_clusters_actor_units_and_dedicate_hot_entities() -> None:
    """One host per ``actors`` unit (an explicit count wins), two on a laptop; a dedicated
    entity gets a host of its own whatever the hash says."""
    assert len(configured(Settings(), 0).slots) == 2
    assert len(configured(Settings(), 6).slots) == 6
    assert len(configured(Settings(entity_hosts=3), 6).slots) == 3
    hot = configured(Settings(dedicated_entities=("sku:FLASH",)), 4)
    assert hot.host("sku", "FLASH") == "host:sku:FLASH"
    assert hot.host("sku", "OTHER") in hot.slots and "host:sku:FLASH" in hot.hosts


def test_the_gateway_count_follows_the_clusters_gateway_units(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    units = {"gateway": 3.0}
    asked: list[int] = []

    def cluster_resources() -> dict[str, float]:
        asked.append(1)
        return units

    monkeypatch.setattr(ray, "cluster_resources", cluster_resources)
    now = [1000.0]
    monkeypatch.setattr(scaling.time, "time", lambda: now[0])
    ctx = SimpleNamespace(policy_state={})
    replicas, state = scaling.gateway_units(ctx)
    assert replicas == 3
    units["gateway"] = 5.0  # a gateway node joined; the policy looks again after a while
    replicas, state = scaling.gateway_units(SimpleNamespace(policy_state=state))
    assert replicas == 3 and len(asked) == 1
    now[0] += scaling.CHECK_EVERY
    replicas, state = scaling.gateway_units(SimpleNamespace(policy_state=state))
    assert replicas == 5
    units.clear()  # every gateway node gone: keep one replica (it waits for a node)
    now[0] += scaling.CHECK_EVERY
    assert scaling.gateway_units(SimpleNamespace(policy_state=state))[0] == 1


def test_a_gateway_on_every_interface_advertises_its_nodes_address() -> None:
    assert advertised_url(Settings(ws_port=9000), "10.0.0.5") == "ws://127.0.0.1:9000"
    assert advertised_url(Settings(ws_host="0.0.0.0"), "10.0.0.5") == "ws://10.0.0.5:8765"
    assert advertised_url(Settings(ws_host="::"), "fd00::5") == "ws://[fd00::5]:8765"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, dict[str, str]]] = []

    def gauge(self, name: str, *_: Any) -> Any:
        return SimpleNamespace(set=lambda v, tags: self.calls.append((name, v, tags)))

    def counter(self, name: str, *_: Any) -> Any:
        return SimpleNamespace(inc=lambda v, tags: self.calls.append((name, v, tags)))


def test_the_exporter_sets_gauges_and_adds_what_counters_grew(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = Recorder()
    monkeypatch.setattr(metrics, "gauge", recorder.gauge)
    monkeypatch.setattr(metrics, "counter", recorder.counter)
    export = metrics.Exporter(
        {"gateway": "g1"}, {"connections": ("c", "")}, {"frames_out": ("f", "")}
    ).export
    export({"connections": 10, "frames_out": 100})
    export({"connections": 7, "frames_out": 160})
    export({"connections": 7, "frames_out": 160})  # nothing grew: no increment
    tags = {"gateway": "g1"}
    assert recorder.calls == [
        ("c", 10.0, tags), ("f", 100.0, tags), ("c", 7.0, tags), ("f", 60.0, tags),
        ("c", 7.0, tags),
    ]  # fmt: skip


def test_every_metric_is_documented_for_operators() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    names = [
        name
        for table in (metrics.GATEWAY_GAUGES, metrics.GATEWAY_COUNTERS, metrics.ROOM_GAUGES,
                      metrics.ROOM_COUNTERS, metrics.SKU_GAUGES, metrics.SKU_COUNTERS)
        for name, _ in table.values()
    ]  # fmt: skip
    names += [
        "liveshop_publish_to_deliver_seconds", "liveshop_batch_size",
        "liveshop_actor_call_seconds", "liveshop_commerce_seconds",
        "liveshop_commit_seconds", "liveshop_transcoder_speed",
    ]  # fmt: skip
    missing = [name for name in names if f"`{name}`" not in operations]
    assert not missing, f"docs/operations.md does not describe {missing}"


def test_cluster_yaml_is_a_valid_launcher_config_with_liveshops_node_types() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    prepared = prepare_config(config)
    validate_config(prepared)  # Ray's own schema, as `ray up` checks it
    types = prepared["available_node_types"]
    declared = {r for node in types.values() for r in node.get("resources", {})}
    assert declared == {*wiring.PLACEMENT_RESOURCES, wiring.MEDIA_RESOURCE}
    head = " ".join(prepared["head_start_ray_commands"])
    # GCS fault tolerance, the dashboard on loopback only, token auth everywhere.
    assert "RAY_REDIS_ADDRESS=" in head and "RAY_external_storage_namespace=" in head
    assert "--dashboard-host=127.0.0.1" in head
    for command in (head, " ".join(prepared["worker_start_ray_commands"])):
        assert "RAY_AUTH_MODE=token" in command
    assert any("liveshop-*.whl" in c for c in prepared["setup_commands"])


def _cluster(monkeypatch: pytest.MonkeyPatch, ips: list[str], resources: dict[str, float]) -> None:
    """What `liveshop up --address` reads of a cluster, without one."""
    nodes = [{"Alive": True, "NodeManagerAddress": ip} for ip in ips]
    monkeypatch.setattr(ray, "cluster_resources", lambda: resources)
    monkeypatch.setattr(ray, "nodes", lambda: nodes)
    monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: ips[0])


def test_joining_a_cluster_places_by_what_its_nodes_declare(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _cluster(monkeypatch, ["10.0.0.1", "10.0.0.2"], {"CPU": 8, "gateway": 4, "media": 2})
    stack = Stack(Settings(database_url="postgresql://db", redis_url="redis://r"))
    said: list[str] = []
    stack._fit_cluster(said.append)
    assert stack.settings.placement == ("gateway",)  # no `actors` declared: anywhere
    assert stack.expected_gateways() == 4
    assert said == ["cluster     2 node(s); placement: gateway 4; media 2"]


def test_embedded_storage_is_refused_when_other_nodes_could_not_reach_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _cluster(monkeypatch, ["10.0.0.1", "10.0.0.2"], {"CPU": 8})
    stack = Stack(Settings(data_dir=tmp_path), postgres=EmbeddedPostgres(tmp_path, port=5))
    with pytest.raises(ClusterError, match=r"10\.0\.0\.2 cannot reach"):
        stack._fit_cluster(lambda _: None)
    # Several nodes on this one machine share its loopback: fine.
    _cluster(monkeypatch, ["10.0.0.1", "10.0.0.1"], {"CPU": 8})
    stack._fit_cluster(lambda _: None)
    assert stack.settings.placement == ()


def test_placement_named_up_front_waits_for_nodes_that_have_not_joined_yet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `ray up` returns before the autoscaler's nodes join: nothing is declared yet.
    _cluster(monkeypatch, ["10.0.0.1"], {"CPU": 4})
    said: list[str] = []
    auto = Stack(Settings(database_url="postgresql://db", redis_url="redis://r"))
    auto._fit_cluster(said.append)
    assert auto.settings.placement == () and "--placement gateway,actors" in said[0]
    named = Settings(placement=parse_placement("gateway,actors"), database_url="postgresql://db")
    stack = Stack(named)
    stack._fit_cluster(lambda _: None)
    assert stack.settings.placement == ("gateway", "actors")
    assert stack.expected_gateways() == 1  # one, pending until a gateway node joins
    with pytest.raises(ClusterError, match="unknown"):
        Stack(Settings(placement=("gpu",)))._fit_cluster(lambda _: None)
    assert parse_placement("auto") == AUTO_PLACEMENT and parse_placement("none") == ()
