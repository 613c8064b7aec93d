"""What a node advertises, the one step that points Ray at ncrt's neuron-ls, and Ray's own parser.

No cluster starts here: Ray's detection function runs in this process, on ncrt's
``neuron-ls`` output, with only its hard-coded directory replaced.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ray._private.accelerators import neuron as ray_neuron

from ncrt.errors import ConfigError, CoresUnavailableError, NcrtError
from ncrt.plugins import ray as neuron_ray
from ncrt.plugins.ray import NeuronNode

RAY_NEURON_DIR = '"/opt/aws/neuron/bin/"'


def ray_detection_in(bin_dir: Path):
    """Ray's own ``get_current_node_num_accelerators``, reading ``bin_dir`` instead of /opt/aws/neuron/bin."""
    source = textwrap.dedent(inspect.getsource(ray_neuron.NeuronAcceleratorManager.get_current_node_num_accelerators))
    source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("@"))
    assert source.count(RAY_NEURON_DIR) == 1, "Ray no longer reads neuron-ls from /opt/aws/neuron/bin"
    namespace = dict(vars(ray_neuron))
    exec(source.replace(RAY_NEURON_DIR, repr(f"{bin_dir}/")), namespace)
    return namespace["get_current_node_num_accelerators"]


@pytest.fixture(scope="module")
def linked_bin(tmp_path_factory) -> Path:
    """A directory holding the link ``ncrt ray link-neuron-ls`` makes."""
    bin_dir = tmp_path_factory.mktemp("neuron-bin")
    link = neuron_ray.link_neuron_ls(bin_dir)
    assert link == bin_dir / "neuron-ls" and link.resolve() == neuron_ray.neuron_ls_script().resolve()
    return bin_dir


@pytest.mark.parametrize("instance_type", sorted(ray_neuron.AWS_NEURON_INSTANCE_MAP))
def test_rays_parser_counts_the_cores_ray_expects_of_each_instance(instance_type, linked_bin, monkeypatch):
    monkeypatch.setenv("NCRT_INSTANCE_TYPE", instance_type)
    detect = ray_detection_in(linked_bin)
    assert detect() == ray_neuron.AWS_NEURON_INSTANCE_MAP[instance_type]
    assert neuron_ray.node_resources()["neuron_cores"] == ray_neuron.AWS_NEURON_INSTANCE_MAP[instance_type]


def test_rays_parser_counts_inf1_and_host_cores(linked_bin, monkeypatch):
    detect = ray_detection_in(linked_bin)
    monkeypatch.setenv("NCRT_INSTANCE_TYPE", "inf1.6xlarge")
    assert detect() == 16
    monkeypatch.delenv("NCRT_INSTANCE_TYPE")
    assert detect() == len(neuron_ray.emulated_topology().cores)


def test_a_bad_instance_type_reaches_ray_as_no_cores(linked_bin, monkeypatch):
    monkeypatch.setenv("NCRT_INSTANCE_TYPE", "inf9.xlarge")
    assert ray_detection_in(linked_bin)() == 0  # Ray ignores a failing neuron-ls ...
    with pytest.raises(ConfigError, match="NCRT_INSTANCE_TYPE='inf9.xlarge'"):
        neuron_ray.node_resources()  # ... ncrt says why


def test_link_neuron_ls_keeps_its_link_and_refuses_a_foreign_file(tmp_path):
    link = neuron_ray.link_neuron_ls(tmp_path)
    assert neuron_ray.link_neuron_ls(tmp_path) == link  # already ncrt's: nothing to do
    link.unlink()
    link.write_text("#!/bin/sh\necho the real neuron-ls\n")
    with pytest.raises(NcrtError, match="exists and is not a link to"):
        neuron_ray.link_neuron_ls(tmp_path)
    assert link.read_text().startswith("#!/bin/sh")
    assert neuron_ray.link_neuron_ls(tmp_path, force=True).is_symlink()


def test_node_resources_and_env():
    assert neuron_ray.node_resources("inf1.xlarge") == {"neuron_cores": 4, "neuron_instance_type:inf1.xlarge": 1}
    assert neuron_ray.node_resources("inf2.48xlarge", neuron_cores=8)["neuron_cores"] == 8
    assert neuron_ray.node_env("trn1.2xlarge", "/tmp/x") == {"NCRT_INSTANCE_TYPE": "trn1.2xlarge", "NCRT_STATE_DIR": "/tmp/x"}
    assert neuron_ray.node_env(None, "/tmp/x") == {"NCRT_STATE_DIR": "/tmp/x"}


@pytest.mark.parametrize("count", [0, 5, 2.5, True])
def test_a_node_never_advertises_cores_it_does_not_emulate(count):
    with pytest.raises(ConfigError, match=r"neuron_cores=.* is not valid; accepted: a whole number from 1 to 4"):
        neuron_ray.node_resources("inf1.xlarge", neuron_cores=count)


def test_an_unknown_instance_type_is_refused_everywhere():
    for call in (lambda: neuron_ray.node_env("inf9.xlarge", "/tmp/x"),
                 lambda: neuron_ray.actor_options(1, "inf9.xlarge", check=False)):
        with pytest.raises(ConfigError, match="inf9.xlarge"):
            call()


NODES = [NeuronNode("a" * 56, "10.0.0.1", 4, "inf1.xlarge"), NeuronNode("b" * 56, "10.0.0.2", 2, "inf2.xlarge")]


def test_actor_options_without_a_cluster_check():
    options = neuron_ray.actor_options(2, "inf1.xlarge", check=False, num_cpus=0, resources={"memory_hog": 1})
    assert options == {"num_cpus": 0, "resources": {"memory_hog": 1, "neuron_cores": 2,
                                                    "neuron_instance_type:inf1.xlarge": 0.001}}
    assert neuron_ray.actor_options(3.0, check=False)["resources"] == {"neuron_cores": 3}


@pytest.mark.parametrize("count", [0, -1, 1.5, "2", True])
def test_neuron_cores_must_be_whole_cores(count):
    with pytest.raises(ConfigError, match="neuron_cores=.* is not valid; accepted: a whole number >= 1"):
        neuron_ray.actor_options(count, check=False)


def test_check_request_names_the_nodes_and_what_they_offer():
    assert neuron_ray.check_request(3, None, NODES) == NODES[:1]
    with pytest.raises(CoresUnavailableError) as too_many:
        neuron_ray.check_request(3, "inf2.xlarge", NODES)
    assert "asking for 3 neuron_cores cannot be placed: the largest inf2.xlarge node emulates 2" in str(too_many.value)
    assert "accepted: 1 to 2 neuron_cores" in str(too_many.value)
    with pytest.raises(CoresUnavailableError) as missing:
        neuron_ray.check_request(1, "trn1.2xlarge", NODES)
    message = str(missing.value)
    assert "no node of the Ray cluster emulates trn1.2xlarge" in message
    assert "inf1.xlarge node aaaaaaaa (4 neuron_cores), inf2.xlarge node bbbbbbbb (2 neuron_cores)" in message


def test_actor_options_needs_a_connected_cluster_to_check():
    with pytest.raises(ConfigError, match="call ray.init"):
        neuron_ray.actor_options(1)


def test_ncrt_ray_resources_prints_the_start_flag_json(python_env):
    result = subprocess.run([sys.executable, "-m", "ncrt", "ray", "resources", "--instance-type", "inf2.24xlarge"],
                            env=python_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"neuron_cores": 12, "neuron_instance_type:inf2.24xlarge": 1}


def test_importing_the_plugin_does_not_import_ray(python_env):
    code = "import sys, ncrt, ncrt.plugins.ray; ncrt.get_runtime(); print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], env=python_env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_without_ray_the_error_names_the_extra(python_env):
    code = ("import sys; sys.modules['ray'] = None\n"
            "from ncrt.plugins import ray as neuron_ray\n"
            "try:\n    neuron_ray.neuron_nodes()\nexcept ImportError as error:\n    print(type(error).__name__, error)")
    result = subprocess.run([sys.executable, "-c", code], env=python_env, capture_output=True, text=True, timeout=60)
    assert result.stdout.startswith("FrameworkMissingError ") and "pip install 'ncrt[ray]'" in result.stdout, result.stderr
