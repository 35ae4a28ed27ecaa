"""The XLA internals that memory saving and BatchNorm rely on, pinned."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from irevnet_tf import IRevNet
from irevnet_tf.layers import xla
from irevnet_tf.testing.test_case import TestCase


def hlo_text(function, *args):
    compiled = tf.function(function, jit_compile=True)
    return compiled.experimental_get_compiler_ir(*args)(stage="hlo")


class OptimizationBarrierTest(TestCase):
    @parameterized.named_parameters(
        ("eager", None), ("graph", False), ("xla", True)
    )
    def test_is_the_identity_everywhere(self, jit_compile):
        # If a TensorFlow upgrade moves or removes the internal op, this
        # fails here rather than in a user's training run.
        x = tf.constant([1.0, -2.0, 3.0])
        y = tf.constant([[4, 5]])

        def barrier(a, b):
            return xla.optimization_barrier(a, b)

        if jit_compile is not None:
            barrier = tf.function(barrier, jit_compile=jit_compile)
        a, b = barrier(x, y)
        self.assertAllEqual(a, x)
        self.assertAllEqual(b, y)

    def test_reaches_xla_as_a_barrier(self):
        text = hlo_text(
            lambda a: xla.optimization_barrier(a * 2.0)[0],
            tf.constant([1.0]),
        )
        self.assertIn("opt-barrier", text)

    def test_in_xla_context(self):
        def probe(x):
            return tf.constant(xla.in_xla_context()) & (x > 0)

        x = tf.constant(1.0)
        self.assertFalse(xla.in_xla_context())
        self.assertFalse(tf.function(probe)(x))
        self.assertTrue(tf.function(probe, jit_compile=True)(x))

    def test_memory_saving_gradient_uses_barriers_under_xla(self):
        # One barrier per reconstructed layer (split, three blocks, merge),
        # and none in the forward pass alone.
        backbone = IRevNet(
            stage_depths=[3],
            stage_filters=[4],
            stage_strides=[1],
            initial_block_size=1,
            image_shape=(8, 8, 8),
        )
        x = tf.constant(np.random.rand(2, 8, 8, 8).astype("float32"))

        def gradients(images):
            with tf.GradientTape() as tape:
                tape.watch(images)
                loss = tf.reduce_sum(backbone(images, training=True) ** 2)
            return tape.gradient(loss, images)

        self.assertEqual(
            hlo_text(lambda i: backbone(i, training=True), x).count(
                "opt-barrier("
            ),
            0,
        )
        self.assertEqual(hlo_text(gradients, x).count("opt-barrier("), 5)
