"""The XLA internals this project relies on, in one place."""

import tensorflow as tf


def optimization_barrier(*tensors):
    """XLA's `OptimizationBarrier`: the identity, opaque to XLA's passes.

    TensorFlow exposes the op only internally, as
    `tensorflow.compiler.tf2xla.python.xla.optimization_barrier`; a test
    (tests/layers/xla_test.py) fails if an upgrade moves it.
    """
    from tensorflow.compiler.tf2xla.python import xla

    return xla.optimization_barrier(*tensors)


def in_xla_context():
    """Whether the graph being built is compiled by XLA as a whole.

    True inside `tf.function(jit_compile=True)`, which is what
    `Model.compile(jit_compile=True)` uses. Internal TensorFlow API too,
    tested with `optimization_barrier`.
    """
    from tensorflow.python.ops import control_flow_util

    graph = tf.compat.v1.get_default_graph()
    return control_flow_util.GraphOrParentsInXlaContext(graph)
