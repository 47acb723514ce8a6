"""One topology for the module: built once (about 15 s), healed between the fault tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tests.multihost.topology import Topology, unavailable_reason


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    reason = unavailable_reason()
    if reason:
        skip_or_fail(f"multi-host topology unavailable: {reason}")
    topo = Topology(Path(tmp_path_factory.mktemp("multihost")))
    try:
        topo.up()
        yield topo
    finally:
        topo.down()


@pytest.fixture
def hosts(topology: Topology) -> Topology:
    """The topology with every host running and plugged in (a fault test may have left one
    down)."""
    for name in topology.hosts:
        if name == "client":
            continue
        topology.plug(name)
        if not topology.alive(name):
            topology.start(name)
    for name in ("web1", "web2"):
        topology.wait_http(f"http://{topology.hosts[name].address}:8000/login")
    return topology
