import numpy as np

from irevnet_tf import InjectivePadding
from irevnet_tf.testing.test_case import TestCase


class InjectivePaddingTest(TestCase):
    def test_appends_zero_channels(self):
        x = np.random.rand(2, 4, 4, 3).astype("float32") + 0.5
        y = InjectivePadding(5)(x)
        self.assertEqual(y.shape, (2, 4, 4, 8))
        self.assertAllEqual(y[..., :3], x)
        self.assertAllEqual(y[..., 3:], np.zeros((2, 4, 4, 5)))

    def test_left_inverse(self):
        for dtype in ("float32", "float64"):
            x = np.random.rand(2, 4, 4, 3).astype(dtype) + 0.5
            # Padding and slicing copy values: exact. The right inverse holds
            # on the image of `call`, which is what assert_invertible feeds.
            self.assert_invertible(
                InjectivePadding(29, dtype=dtype), x, rtol=0.0
            )

    def test_zero_padding_is_identity(self):
        x = np.random.rand(1, 2, 2, 3).astype("float32")
        self.assertAllEqual(InjectivePadding(0)(x), x)

    def test_serialization(self):
        layer = InjectivePadding(7)
        self.assert_config_complete(layer)
        self.run_serialization_test(layer, np.random.rand(2, 4, 4, 3))

    def test_negative_padding(self):
        with self.assertRaisesRegex(ValueError, r"non-negative.*channels=-1"):
            InjectivePadding(-1)

    def test_inverse_of_too_few_channels(self):
        with self.assertRaisesRegex(ValueError, r"Cannot drop 5 .* only 3"):
            InjectivePadding(5).inverse(np.zeros((1, 2, 2, 3), "float32"))
