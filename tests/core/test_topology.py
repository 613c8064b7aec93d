from __future__ import annotations

import pytest

from ncrt.errors import ConfigError
from ncrt.topology import PRESETS, build_topology, host_cpus

EXPECTED_CORES = {
    "inf1.xlarge": 4, "inf1.2xlarge": 4, "inf1.6xlarge": 16, "inf1.24xlarge": 64,
    "inf2.xlarge": 2, "inf2.8xlarge": 2, "inf2.24xlarge": 12, "inf2.48xlarge": 24,
    "trn1.2xlarge": 2, "trn1.32xlarge": 32,
}


@pytest.mark.parametrize("name,count", sorted(EXPECTED_CORES.items()))
def test_presets_have_the_instance_core_counts(name, count):
    topology = build_topology(name)
    assert len(topology) == count
    assert [core.index for core in topology.cores] == list(range(count))


def test_inf1_has_four_cores_per_chip():
    topology = build_topology("inf1.6xlarge")
    assert topology.chip_count == 4
    assert [core.chip for core in topology.cores] == [i // 4 for i in range(16)]
    assert PRESETS["inf1.24xlarge"].chips == 16


def test_default_is_one_core_per_host_cpu():
    cpus = host_cpus()
    topology = build_topology(None)
    assert len(topology) == len(cpus)
    assert [core.cpus for core in topology.cores] == [(cpu,) for cpu in cpus]


def test_every_core_is_backed_by_host_cpus():
    topology = build_topology("inf1.6xlarge", cpus=(0, 1))
    assert [core.cpus for core in topology.cores[:4]] == [(0,), (1,), (0,), (1,)]
    few = build_topology("inf2.xlarge", cpus=(0, 1, 2, 3, 4))
    assert [core.cpus for core in few.cores] == [(0, 1, 2), (3, 4)]


def test_unknown_instance_type_is_a_config_error_listing_presets():
    with pytest.raises(ConfigError) as info:
        build_topology("inf9.huge")
    message = str(info.value)
    assert "NCRT_INSTANCE_TYPE" in message and "'inf9.huge'" in message and "inf1.6xlarge" in message
