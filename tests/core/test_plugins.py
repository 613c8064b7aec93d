"""The plugin manager: built-in plugins, third-party plugins, entry points, blocking."""

from __future__ import annotations

import sys
import textwrap

import pluggy
import pytest

import ncrt
from ncrt.manager import DEFAULT_PLUGINS, plugin_manager


@pytest.fixture
def pm():
    return plugin_manager(blocked=[], entry_points=False)


def test_the_default_behaviour_is_itself_a_registered_plugin(pm):
    assert pm.get_plugin("defaults") is sys.modules["ncrt.defaults"]
    assert DEFAULT_PLUGINS[0] == ("defaults", "ncrt.defaults")
    assert all(isinstance(name, str) and isinstance(module, str) for name, module in DEFAULT_PLUGINS)


def test_a_third_party_plugin_answers_before_the_defaults(pm, monkeypatch, tmp_path):
    class Reversed:
        @ncrt.hookimpl
        def ncrt_placement(self, model, request, runtime):
            last = runtime.table.core_count - request.size
            return ncrt.Placement(cores=tuple(range(last, last + request.size)))

        @ncrt.hookimpl
        def ncrt_load(self, artifact, config):
            return ncrt.Model("mine", "mine", ncrt.Manifest("mine"), artifact,
                              runner=lambda model, inputs, core: ("seen on", core.index))

    pm.register(Reversed(), name="reversed")
    monkeypatch.setenv("NCRT_INSTANCE_TYPE", "inf1.xlarge")
    runtime = ncrt.Runtime(pm=pm)
    try:
        model = runtime.load(lambda: None)
        assert model.cores == (3,)
        assert model() == ("seen on", 3)
    finally:
        runtime.close()


def test_returning_none_defers_to_the_next_plugin(pm, monkeypatch):
    class NotMine:
        @ncrt.hookimpl
        def ncrt_load(self, artifact, config):
            return None

    pm.register(NotMine())
    runtime = ncrt.Runtime(pm=pm)
    try:
        assert runtime.load(lambda x: x + 1)(1) == 2
    finally:
        runtime.close()


def test_a_misspelt_hook_is_caught(pm):
    class Typo:
        @ncrt.hookimpl
        def ncrt_laod(self, artifact, config):
            return None

    pm.register(Typo())
    with pytest.raises(pluggy.PluginValidationError, match="ncrt_laod"):
        pm.check_pending()


def test_plugins_can_be_blocked_by_environment(monkeypatch):
    monkeypatch.setenv("NCRT_DISABLE_PLUGINS", "defaults, torch")
    pm = plugin_manager(entry_points=False)
    assert pm.is_blocked("defaults") and pm.is_blocked("torch")
    assert pm.get_plugin("defaults") is None


def _install_fake_distribution(root, module_body):
    (root / "ncrt_fake_plugin.py").write_text(textwrap.dedent(module_body))
    info = root / "ncrt_fake_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ncrt-fake-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ncrt]\nfake = ncrt_fake_plugin\n")


def test_third_party_plugins_load_from_the_ncrt_entry_point_group(tmp_path, monkeypatch):
    _install_fake_distribution(tmp_path, """
        import ncrt

        @ncrt.hookimpl
        def ncrt_configure(config):
            config.num_cores = 1
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = plugin_manager(blocked=[])
    assert pm.get_plugin("fake") is not None
    runtime = ncrt.Runtime(pm=pm)
    try:
        assert len(runtime.cores) == 1
    finally:
        runtime.close()
    blocked = plugin_manager(blocked=["fake"])
    assert blocked.get_plugin("fake") is None


def test_discover_cores_can_be_replaced(pm):
    from ncrt.topology import build_topology

    class EightCores:
        @ncrt.hookimpl
        def ncrt_discover_cores(self, config):
            return build_topology("inf2.48xlarge")

    pm.register(EightCores())
    runtime = ncrt.Runtime(pm=pm)
    try:
        assert len(runtime.cores) == 24
    finally:
        runtime.close()
