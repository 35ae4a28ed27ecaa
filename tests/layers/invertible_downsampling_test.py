import numpy as np
import tensorflow as tf

from irevnet_tf import InvertibleDownsampling
from irevnet_tf.testing.test_case import TestCase


class InvertibleDownsamplingTest(TestCase):
    def test_channel_order_is_pinned(self):
        # x[0, i, j, c] = 100 * i + 10 * j + c on a 4x4x2 image.
        i, j, c = np.meshgrid(
            np.arange(4), np.arange(4), np.arange(2), indexing="ij"
        )
        x = (100 * i + 10 * j + c).astype("float32")[None]
        y = InvertibleDownsampling(2)(x)
        # Output pixel (0, 1) holds input pixels (0..1, 2..3), input pixel
        # (dh, 2 + dw) channel c going to channel (dh * 2 + dw) * C + c.
        self.assertAllEqual(y[0, 0, 1], [20, 21, 30, 31, 120, 121, 130, 131])
        self.assertAllEqual(y[0, 1, 0, :2], [200, 201])

    def test_equals_tf_space_to_depth(self):
        for block_size in (2, 3, 4):
            x = np.random.rand(2, 12, 24, 5).astype("float32")
            layer = InvertibleDownsampling(block_size)
            self.assertAllEqual(layer(x), tf.nn.space_to_depth(x, block_size))

    def test_invertible(self):
        for dtype in ("float32", "float64"):
            x = np.random.rand(3, 8, 12, 3).astype(dtype)
            layer = InvertibleDownsampling(2, dtype=dtype)
            # A permutation of the values: exact in any precision.
            self.assert_invertible(layer, x, rtol=0.0)
            self.assertEqual(layer(x).dtype, dtype)

    def test_serialization(self):
        layer = InvertibleDownsampling(4)
        self.assert_config_complete(layer)
        self.run_serialization_test(layer, np.random.rand(2, 8, 8, 3))

    def test_invalid_block_size(self):
        for block_size in (1, 0, 2.0, "2"):
            with self.assertRaisesRegex(ValueError, "block_size"):
                InvertibleDownsampling(block_size)

    def test_indivisible_spatial_size(self):
        with self.assertRaisesRegex(
            ValueError, r"height.*divisible.*\(1, 6, 8, 3\)"
        ):
            InvertibleDownsampling(4)(np.zeros((1, 6, 8, 3), "float32"))

    def test_inverse_of_indivisible_channels(self):
        with self.assertRaisesRegex(
            ValueError, r"divisible by block_size\*\*2=4"
        ):
            InvertibleDownsampling(2).inverse(np.zeros((1, 2, 2, 6), "float32"))
