"""``torch.neuron.trace``'s documented options, ``analyze_model`` and ``get_supported_operations``.

The examples of the compilation API page (function, method and module compilation,
``torch.jit.trace`` kwargs, dynamic batching, manual partitioning, separate weights) run
in their own shapes with small models.
"""

from __future__ import annotations

import json
import logging
import warnings

import pytest

torch = pytest.importorskip("torch")

import ncrt  # noqa: E402
from ncrt.errors import BadInputError, ExecutionError  # noqa: E402
from ncrt.plugins import torch as neuron  # noqa: E402
from ncrt.plugins.torch import options as trace_options  # noqa: E402
from torch_test_models import close, plain  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

IMAGE = (1, 3, 8, 8)


class ExampleConvolutionLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3)

    def forward(self, x):
        return self.conv(x) + 1


class PartitionedModel(torch.nn.Module):
    """The API page's "Manual Partitioning" model."""

    def __init__(self):
        super().__init__()
        self.layer = ExampleConvolutionLayer()

    def forward(self, x):
        return self.layer(x) * 100


class DictOutput(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3)

    def forward(self, x):
        return {"conv": self.conv(x) + 1}


@pytest.fixture(autouse=True)
def fresh_warnings():
    trace_options.reset_warnings()
    yield
    trace_options.reset_warnings()


def test_every_documented_option_is_accepted_and_recorded(cnn, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", neuron.IgnoredOptionWarning)
        model = neuron.trace(
            cnn, torch.rand(*IMAGE), compiler_args=["--neuroncore-pipeline-cores", "1"], compiler_timeout=900,
            compiler_workdir=str(tmp_path / "work"), subgraph_builder_function=lambda node: True,
            minimum_segment_size=2, single_fusion_ratio_threshold=0.6, fallback=True, dynamic_batch_size=True,
            optimizations=[neuron.Optimization.FLOAT32_TO_FLOAT16], separate_weights=True, verbose=0,
            op_whitelist=["aten::_convolution"], skip_compiler=False, check_trace=True,
        )
    recorded = model.manifest.extra["trace_options"]
    assert sorted(recorded) == sorted([
        "compiler_timeout", "compiler_workdir", "subgraph_builder_function", "minimum_segment_size",
        "single_fusion_ratio_threshold", "fallback", "dynamic_batch_size", "optimizations", "separate_weights",
        "verbose", "op_whitelist", "skip_compiler",
    ])
    assert recorded["optimizations"] == ["FLOAT32_TO_FLOAT16"] and recorded["compiler_timeout"] == 900
    assert recorded["subgraph_builder_function"].endswith("<lambda>")
    image = torch.rand(3, 3, 8, 8)
    close(model(image), plain(cnn, image))  # dynamic_batch_size honoured


def test_the_options_survive_save_and_load(cnn, tmp_path):
    with pytest.warns(neuron.IgnoredOptionWarning):
        model = neuron.trace(cnn, torch.rand(*IMAGE), separate_weights=True, minimum_segment_size=3)
    torch.jit.save(model, str(tmp_path / "m.pt"))
    reloaded = neuron.load(str(tmp_path / "m.pt"))
    assert reloaded.manifest.extra["trace_options"] == {"separate_weights": True, "minimum_segment_size": 3}


def test_ignored_options_warn_once_per_process(cnn):
    with pytest.warns(neuron.IgnoredOptionWarning) as caught:
        neuron.trace(cnn, torch.rand(*IMAGE), separate_weights=True, compiler_timeout=10)
        neuron.trace(cnn, torch.rand(*IMAGE), separate_weights=True, compiler_timeout=10)
    ignored = [w for w in caught if w.category is neuron.IgnoredOptionWarning]
    messages = [str(w.message) for w in ignored]
    assert len(messages) == 2
    assert "separate_weights=True) has no effect on ncrt: ncrt has no 1.9 GB limit" in messages[0] + messages[1]
    assert "compiler_timeout=10) has no effect on ncrt: no neuron-cc subprocess runs" in messages[0] + messages[1]
    assert ignored[0].filename == __file__  # the warning points at the caller


def test_other_neuron_cc_flags_are_recorded_and_warned_once(cnn):
    with pytest.warns(neuron.IgnoredOptionWarning) as caught:
        model = neuron.trace(cnn, torch.rand(*IMAGE), compiler_args="--fast-math none --neuroncore-pipeline-cores 2")
        neuron.trace(cnn, torch.rand(*IMAGE), compiler_args=["--fast-math", "fp32-cast-matmul"])
    messages = [str(w.message) for w in caught if w.category is neuron.IgnoredOptionWarning]
    assert messages == ["torch.neuron.trace(compiler_args=['--fast-math', ...]) has no effect on ncrt: no neuron-cc "
                        "runs and the model computes as traced; only --neuroncore-pipeline-cores applies (the flag "
                        "is recorded in the manifest)"]
    assert model.manifest.compiler_args == ["--fast-math", "none", "--neuroncore-pipeline-cores", "2"]
    assert model.manifest.pipeline_cores == 2


def test_honoured_options_do_not_warn(cnn):
    with warnings.catch_warnings():
        warnings.simplefilter("error", neuron.IgnoredOptionWarning)
        neuron.trace(cnn, torch.rand(*IMAGE), fallback=False, dynamic_batch_size=True, verbose=0,
                     compiler_args="--neuroncore-pipeline-cores 2", optimizations=[])


def test_verbose_logs_the_compilation_summary(cnn, caplog):
    """(On stderr when the application configured no logging: the compat test checks that.)"""
    with caplog.at_level(logging.INFO, logger="Neuron"):
        neuron.trace(cnn, torch.rand(2, 3, 8, 8), verbose=1, compiler_args=["--neuroncore-pipeline-cores", "2"])
        lines = [r.getMessage() for r in caplog.records if r.name == "Neuron"]
        assert lines[0] == ("ncrt traced SmallCNN: 6 operator(s) of 4 kind(s); all of them run on the emulated "
                            "NeuronCore (ncrt does not partition the graph)")
        assert lines[1] == "compiled batch size 2, --neuroncore-pipeline-cores 2, dynamic batch size off"
        caplog.clear()
        neuron.trace(cnn, torch.rand(*IMAGE))
        neuron.trace(cnn, torch.rand(*IMAGE), verbose=0)
        assert [r for r in caplog.records if r.name == "Neuron"] == []


def test_verbose_may_name_a_level(cnn, caplog):
    with caplog.at_level(logging.DEBUG, logger="Neuron"):
        neuron.trace(cnn, torch.rand(*IMAGE), verbose="DEBUG")
    assert [r.levelname for r in caplog.records if r.name == "Neuron"] == ["DEBUG", "DEBUG"]


def test_compiler_workdir_holds_the_compilation_artifacts(cnn, tmp_path):
    workdir = tmp_path / "compilation_artifacts"
    model = neuron.trace(cnn, torch.rand(*IMAGE), compiler_workdir=workdir)
    assert sorted(p.name for p in workdir.iterdir()) == ["code.py", "graph.txt", "manifest.json", "operators.json",
                                                         "trace.log"]
    assert "aten::_convolution" in (workdir / "graph.txt").read_text()
    assert json.loads((workdir / "manifest.json").read_text())["batch_size"] == 1
    assert json.loads((workdir / "operators.json").read_text())["operator_count"]["aten::_convolution"] == 2
    assert model.manifest.extra["operators"]["total_count"] == 6


def test_float32_to_float16_lets_the_model_take_float16_inputs(cnn):
    image = torch.rand(*IMAGE)
    with pytest.warns(neuron.IgnoredOptionWarning, match="applied in part"):
        model = neuron.trace(cnn, image, optimizations=[neuron.Optimization.FLOAT32_TO_FLOAT16])
    close(model(image.half()), plain(cnn, image.half().float()))
    close(model(image), plain(cnn, image))
    with pytest.raises(ExecutionError, match="Half"):
        neuron.trace(cnn, image)(image.half())  # without the pass, as on torch


def test_manual_partitioning_evaluates_the_builder_on_every_operator():
    """The API page's example: only ``aten::_convolution`` and ``aten::add`` are selected."""
    seen = []

    def subgraph_builder_function(node) -> bool:
        seen.append((node.kind, node.name))
        return "ExampleConvolutionLayer" in node.name

    model = PartitionedModel().eval()
    inputs = torch.rand(1, 1, 3, 3)
    with pytest.warns(neuron.IgnoredOptionWarning, match="1 of the 3 operator"):
        neuron_model = neuron.trace(model, inputs, subgraph_builder_function=subgraph_builder_function)
    assert seen == [
        ("aten::_convolution", ("PartitionedModel", "ExampleConvolutionLayer", "Conv2d")),
        ("aten::add", ("PartitionedModel", "ExampleConvolutionLayer")),
        ("aten::mul", ("PartitionedModel",)),
    ]
    assert neuron_model.manifest.extra["operators"]["neuron_selected"] == 2
    close(neuron_model(inputs), plain(model, inputs))  # the whole graph still runs on the core


def test_op_whitelist_of_the_samples_selects_by_operator_name(cnn):
    ops = neuron.get_supported_operations() + ["aten::embedding"]
    assert isinstance(ops, list) and "aten::_convolution" in ops and "aten::linear" in ops
    with pytest.warns(neuron.IgnoredOptionWarning, match="0 of the 6 operator"):
        model = neuron.trace(cnn, torch.rand(*IMAGE), op_whitelist=ops)
    assert model.manifest.extra["operators"]["neuron_selected"] == 6
    with pytest.warns(neuron.IgnoredOptionWarning, match="op_whitelist.*4 of the 6 operator"):
        trace_options.reset_warnings()
        neuron.trace(cnn, torch.rand(*IMAGE), op_whitelist=["aten::_convolution"])


def test_function_compilation(tmp_path):
    """``torch.neuron.trace(foo, (torch.rand(3), torch.rand(3)))``, saved and loaded."""
    def foo(x, y):
        return 2 * x + y

    traced_foo = neuron.trace(foo, (torch.rand(3), torch.rand(3)))
    torch.jit.save(traced_foo, str(tmp_path / "foo.pt"))
    traced_foo = neuron.load(str(tmp_path / "foo.pt"))
    x, y = torch.rand(3), torch.rand(3)
    close(traced_foo(x, y), 2 * x + y)
    assert neuron.trace(foo, (x, y)).name == "foo"


def test_module_and_method_compilation():
    model = ExampleConvolutionLayer().eval()
    inputs = torch.rand(1, 1, 3, 3)
    neuron_forward = neuron.trace(model.forward, inputs)
    neuron_net = neuron.trace(model, inputs)
    close(neuron_forward(inputs), plain(model, inputs))
    close(neuron_net(inputs), plain(model, inputs))
    assert neuron_forward.name == "ExampleConvolutionLayer"


def test_jit_trace_kwargs_pass_through():
    """``strict=False`` for dictionary outputs; any other keyword of ``torch.jit.trace`` too."""
    model = DictOutput().eval()
    inputs = torch.rand(1, 1, 3, 3)
    neuron_model = neuron.trace(model, inputs, strict=False)
    close(neuron_model(inputs)["conv"], plain(model, inputs)["conv"])
    neuron.trace(model, inputs, strict=False, check_trace=True, check_tolerance=1e-5)
    with pytest.raises(TypeError, match="no_such_option"):
        neuron.trace(model, inputs, no_such_option=1)


def test_example_inputs_may_be_a_list_of_arguments(cnn):
    """The ResNet-50 tutorial's ``torch.neuron.trace(model, example_inputs=[image])``."""
    image = torch.rand(*IMAGE)
    model = neuron.trace(cnn, example_inputs=[image])
    assert model.manifest.inputs == [{"shape": list(IMAGE), "dtype": "float32"}]
    close(model(image), plain(cnn, image))


@pytest.mark.parametrize("option, value, accepted", [
    ("compiler_timeout", 0, "a number of seconds > 0"),
    ("compiler_timeout", "60", "a number of seconds > 0"),
    ("compiler_workdir", 3, "a directory path"),
    ("subgraph_builder_function", "conv", "a function taking a graph node"),
    ("minimum_segment_size", 0, "an int >= 1"),
    ("single_fusion_ratio_threshold", 1.5, "a number from 0.0 to 1.0"),
    ("fallback", "no", "True or False"),
    ("dynamic_batch_size", 1, "True or False"),
    ("separate_weights", "yes", "True or False"),
    ("optimizations", ["FLOAT32_TO_FLOAT16"], "a list of torch_neuron.Optimization passes"),
    ("verbose", "LOUD", "an int >= 0"),
    ("op_whitelist", "aten::add", "a list of operator names"),
])
def test_bad_option_values_are_clear_errors(cnn, option, value, accepted):
    with pytest.raises(BadInputError, match=rf"{option}=.* is not valid; accepted: {accepted}"):
        neuron.trace(cnn, torch.rand(*IMAGE), **{option: value})


def test_analyze_model_reports_the_operators_of_the_traced_graph(cnn, capsys):
    result = neuron.analyze_model(cnn, example_inputs=torch.rand(*IMAGE))
    assert result["operator_count"] == {"aten::_convolution": 2, "aten::linear": 1, "aten::mean": 1, "aten::relu": 2}
    assert result["percent_supported"] == 100.0 and result["supported_count"] == result["total_count"] == 6
    assert result["unsupported_operators"] == [] and result["supported_operators"] == set(result["operators"])
    out = capsys.readouterr().out
    assert "aten::_convolution      2  NeuronCore (emulated)" in out
    assert "100.00% of all operations (6 of 6) are supported" in out
    assert ncrt.current_runtime() is None or ncrt.current_runtime().models == []  # nothing placed


def test_analyze_model_of_a_multi_input_model(capsys):
    """The BERT samples pass a tuple of inputs."""
    class Pair(torch.nn.Module):
        def forward(self, a, b):
            return torch.matmul(a, b.transpose(0, 1)).softmax(-1)

    result = neuron.analyze_model(Pair(), (torch.rand(2, 4), torch.rand(3, 4)))
    assert result["operator_count"] == {"aten::matmul": 1, "aten::softmax": 1, "aten::transpose": 1}
