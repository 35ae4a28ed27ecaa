import numpy as np
from absl.testing import parameterized

from irevnet_tf.layers.standardization import Standardization
from irevnet_tf.testing.test_case import TestCase

# CIFAR-10-like statistics, far from the identity.
_MEAN = [0.4914, 0.4822, 0.4465]
_STD = [0.2470, 0.2435, 0.2616]


class StandardizationTest(TestCase):
    def test_values(self):
        x = np.random.rand(2, 4, 4, 3)
        y = Standardization(_MEAN, _STD, dtype="float64")(x)
        self.assertAllClose(y, (x - _MEAN) / _STD, rtol=1e-15, atol=0)

    @parameterized.named_parameters(
        # One rounding per operation: measured 1.2e-8 in float32.
        ("float32", "float32", 1e-6),
        ("float64", "float64", 1e-14),
    )
    def test_invertible(self, dtype, rtol):
        x = np.random.rand(3, 8, 8, 3).astype(dtype)
        layer = Standardization(_MEAN, _STD, dtype=dtype)
        self.assert_invertible(layer, x, rtol=rtol)
        self.assertEqual(layer(x).dtype, dtype)

    def test_identity_is_exact(self):
        x = np.random.rand(2, 4, 4, 3).astype("float32")
        layer = Standardization()
        self.assertTrue(layer.is_identity)
        self.assertAllEqual(layer(x), x)
        self.assertAllEqual(layer.inverse(x), x)

    def test_scalar_statistics_apply_to_every_channel(self):
        x = np.random.rand(2, 4, 4, 5)
        y = Standardization(0.5, 0.25, dtype="float64")(x)
        self.assertAllClose(y, (x - 0.5) / 0.25)

    def test_serialization(self):
        layer = Standardization(_MEAN, _STD)
        self.assert_config_complete(layer)
        self.run_serialization_test(layer, np.random.rand(2, 4, 4, 3))

    @parameterized.named_parameters(
        ("zero_std", {"std": [1.0, 0.0]}, "positive"),
        ("negative_std", {"std": -1.0}, "positive"),
        ("nan_mean", {"mean": float("nan")}, "finite"),
        ("inf_std", {"std": float("inf")}, "finite"),
        ("text", {"mean": "a"}, "number"),
        ("empty", {"mean": []}, "finite"),
        ("lengths", {"mean": [0, 0], "std": [1, 1, 1]}, "one value per"),
    )
    def test_bad_statistics(self, kwargs, message):
        with self.assertRaisesRegex(ValueError, message):
            Standardization(**kwargs)

    def test_channel_mismatch(self):
        with self.assertRaisesRegex(ValueError, r"3 values for 1 channels"):
            Standardization(_MEAN, _STD)(np.zeros((1, 2, 2, 1), "float32"))
