"""A compiled module is a ``torch.nn.Module``: the tutorials' ways of putting it inside a model.

The ResNet-50 partition tutorial replaces layers (``self.layer1 = torch.neuron.trace(self.layer1, x)``),
the troubleshooting guide compiles a submodule of a model that is not traceable, the
MarianMT and R-CNN tutorials inject compiled encoders and heads, and the aws-neuron-samples
notebooks hang a compiled model on ``forward_neuron``.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ncrt.plugins import torch as neuron  # noqa: E402
from torch_test_models import close  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

IMAGE = (1, 3, 8, 8)


class Block(torch.nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(channels)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)) + x)


class Net(torch.nn.Module):
    """A two-block residual net, the partition tutorial's ResNet in small."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.layer1, self.layer2 = Block(8), Block(8)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(x.mean((2, 3)))


class NetNeuron(Net):
    def trace(self, x):
        x = self.stem(x)
        self.layer1 = neuron.trace(self.layer1, x, fallback=False)
        x = self.layer1(x)
        self.layer2 = neuron.trace(self.layer2, x, fallback=False)


def executions(runtime):
    return sum(counter.executions for counter in runtime.counters)


@pytest.fixture
def partitioned(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    reference = Net().eval()
    model = NetNeuron().eval()
    model.load_state_dict(reference.state_dict())
    model.trace(torch.rand(*IMAGE))
    return runtime, model, reference


def test_compiled_layers_replace_submodules_and_run_on_the_cores(partitioned):
    runtime, model, reference = partitioned
    assert isinstance(model.layer1, torch.nn.Module) and isinstance(model.layer1, neuron.NeuronModule)
    image = torch.rand(*IMAGE)
    before = executions(runtime)
    with torch.no_grad():
        close(model(image), reference(image))
    assert [m.placement.label for m in runtime.models] == ["NC0", "NC1"]
    assert executions(runtime) - before == 2  # one per compiled layer


def test_tracing_a_model_that_holds_compiled_layers(partitioned, tmp_path):
    """The tutorial then ``torch.jit.trace``s the whole model, saves and reloads it."""
    runtime, model, reference = partitioned
    image = torch.rand(*IMAGE)
    neuron_trace = torch.jit.trace(model, example_inputs=image)
    neuron_trace.save(str(tmp_path / "trace.pt"))
    loaded = torch.jit.load(str(tmp_path / "trace.pt"))
    before = executions(runtime)
    with torch.no_grad():
        close(neuron_trace(image), reference(image))
        close(loaded(image), reference(image))
    assert executions(runtime) == before  # such a TorchScript model runs on the host CPU (documented)


def test_scripting_a_model_around_a_compiled_submodule():
    """Troubleshooting guide: compile the traceable submodule, script the rest."""
    class Inner(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 3)

        def forward(self, x):
            return self.conv(x) + 1

    class Outer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()

        def forward(self, x, add_offset: bool = False):
            base = self.inner(x)
            if add_offset:
                return base + 1
            return base

    model = Outer()
    inputs = torch.rand(1, 1, 3, 3)
    with torch.no_grad():
        expected = model(inputs, True)
        model.inner = neuron.trace(model.inner, inputs)
        close(model(inputs, True), expected)  # eager: the submodule runs on a core
        script = torch.jit.script(model)
        close(script(inputs, True), expected)


def test_output_format_wrapper_around_a_compiled_model():
    """Troubleshooting guide: ``model.traceable_model = torch.neuron.trace(model.traceable_model, inputs)``."""
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 3)

        def forward(self, x):
            return (self.conv(x) + 1, self.conv(x) + 2), self.conv(x) + 3

    class OutputFormatWrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.traceable_model = Model()

        def forward(self, x):
            return list(self.traceable_model(x))

    model = OutputFormatWrapper().eval()
    inputs = torch.rand(1, 1, 3, 3)
    with torch.no_grad():
        expected = model(inputs)
        model.traceable_model = neuron.trace(model.traceable_model, inputs)
        (a, b), c = model(inputs)
    close(a, expected[0][0]), close(b, expected[0][1]), close(c, expected[1])


def test_injected_encoder_keeps_extra_attributes_and_the_model_state(partitioned):
    """MarianMT sets ``main_input_name`` on the compiled encoder; samples use ``forward_neuron``."""
    runtime, model, reference = partitioned
    setattr(model.layer1, "main_input_name", "input_ids")
    assert model.layer1.main_input_name == "input_ids"
    reference.forward_neuron = model.layer2  # a plain attribute, or a registered child: both work
    assert reference.forward_neuron is model.layer2
    assert "layer1.script_module.conv.weight" in model.state_dict()
    assert model.eval() is model and model.layer1.training is False
    assert "aten::_convolution" in str(model.layer1.inlined_graph)  # the ScriptModule's attributes
