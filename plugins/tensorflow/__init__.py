"""TensorFlow on ncrt: compile, load into core groups, auto multicore replication, dynamic batching.

The tensorflow-neuron API (``seeds/000``, ``seeds/003``)::

    from ncrt.plugins import tensorflow as tfn      # or: import ncrt.compat; import tensorflow_neuron as tfn

    tfn.saved_model.compile("rn50", "rn50_compiled/1", model_feed_dict={"input_1:0": example},
                            dynamic_batch_size=True, compiler_args=["--neuroncore-pipeline-cores", "4"])
    model = tfn.load_model("rn50_compiled/1")      # next free group of 4 cores, in load order
    traced = tfn.trace(keras_model, example)        # TF2: traced.save(dir), or call it
    traced.on_neuron_ratio                          # 1.0: ncrt runs every operator on the core
    replicated = tfn.auto_multicore(traced, example, num_cores=4)
    outputs = tfn.feed(replicated, stream_of_inputs)  # from a thread pool, in order

Placement: a model compiled for N > 1 cores gets the next free group of N cores; a
1-core model is replicated on up to 4 cores (:func:`default_replicas`); when the
process's cores are used up models share groups (``ncrt.ModelSwitchWarning``).
Replicas share the one loaded copy of the weights: each core's executor thread runs the
same TF function.

Modules: ``compile`` (saved_model.compile, trace, the SavedModel format), ``calling``
(how tensorflow-neuron calls a model with its example inputs), ``analyze``
(``on_neuron_ratio``, ``analyze_model``), ``commands`` (``tf-neuron-auto-multicore``), ``model``
(NeuronModel, load_model), ``placement``, ``parallel`` (auto_multicore, feed,
tf-auto-multicore), ``execute`` (importing TF, thread pools, how a core runs a model),
``compat`` (``tensorflow.neuron``), ``hooks`` (the registered plugin). Importing this
package does not import TensorFlow.
"""

from __future__ import annotations

from .analyze import analyze_model
from .compat import saved_model
from .compile import TracedModel, trace
from .execute import FRAMEWORK, configure_threads, import_tf, thread_settings
from .model import NeuronModel, load_model
from .parallel import auto_multicore, feed, write_auto_multicore
from .placement import AUTO_MULTICORE_KEY, DEFAULT_REPLICAS, default_replicas

__all__ = [
    "AUTO_MULTICORE_KEY",
    "DEFAULT_REPLICAS",
    "FRAMEWORK",
    "NeuronModel",
    "TracedModel",
    "analyze_model",
    "auto_multicore",
    "configure_threads",
    "default_replicas",
    "feed",
    "import_tf",
    "load_model",
    "saved_model",
    "thread_settings",
    "trace",
    "write_auto_multicore",
]
