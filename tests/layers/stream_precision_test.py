import keras
import numpy as np
import tensorflow as tf

from irevnet_tf.layers import stream_precision
from irevnet_tf.testing.test_case import TestCase


class StreamPrecisionTest(TestCase):
    def test_round_to_grid(self):
        grid = stream_precision.GRID
        x = np.random.default_rng(0).normal(0.0, 4.0, 10_000)
        x = tf.constant(np.append(x, [0.5 * grid, -1.5 * grid, 20.0 + grid]))
        x = tf.cast(x, "float32")
        rounded = stream_precision.round_to_grid(x)
        multiples = rounded.numpy().astype(np.float64) / grid
        self.assertAllEqual(multiples, np.round(multiples))
        self.assertLessEqual(np.max(np.abs(rounded - x)), grid / 2)
        # Exactly `round(x / grid) * grid`, not merely close to it.
        self.assertAllEqual(rounded, tf.round(x / grid) * grid)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = stream_precision.round_to_grid(x)
        self.assertAllEqual(tape.gradient(y, x), tf.ones_like(x))

    def test_sums_on_the_grid_are_exact_below_16(self):
        # What the exact inverse rests on: float32 adds and subtracts
        # multiples of the grid without rounding while |values| < 16.
        rng = np.random.default_rng(1)
        a, b = (
            stream_precision.round_to_grid(
                tf.constant(rng.uniform(-8, 8, 100_000), "float32")
            )
            for _ in range(2)
        )
        self.assertAllEqual((a + b) - b, a)

    def test_policies(self):
        for name, mixed in (
            ("float32", False),
            ("float64", False),
            ("mixed_float16", True),
            ("mixed_bfloat16", True),
        ):
            policy = keras.DTypePolicy(name)
            self.assertEqual(stream_precision.is_mixed(policy), mixed, name)
            stream = stream_precision.stream_dtype_policy(policy)
            self.assertEqual(stream.compute_dtype, policy.variable_dtype)
            self.assertEqual(stream.variable_dtype, policy.variable_dtype)
