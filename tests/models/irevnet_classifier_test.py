import keras
import numpy as np
from absl.testing import parameterized

from irevnet_tf import IRevNet
from irevnet_tf import IRevNetClassifier
from irevnet_tf.testing.layouts import CIFAR_LIKE
from irevnet_tf.testing.test_case import TestCase
from irevnet_tf.testing.test_case import randomize_batch_norm


def trainable_parameters(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


class IRevNetClassifierTest(TestCase):
    # The authors' models (pytorch-i-revnet) and the paper's Table 1; our
    # reconstruction of the paper's model (a): see the preset.
    @parameterized.named_parameters(
        ("cifar10", "cifar10", 6_274_826),
        ("irevnet301", "irevnet301", 125_120_356),
        ("irevnet300", "irevnet300", 29_201_092),
        ("irevnet_injective", "irevnet_injective", 136_533_928),
    )
    def test_preset_parameter_counts(self, preset, count):
        model = IRevNetClassifier.from_preset(preset)
        self.assertEqual(trainable_parameters(model), count)

    @parameterized.named_parameters(
        ("float32", "float32", 1e-5), ("float64", "float64", 1e-12)
    )
    def test_features_and_inverse(self, dtype, rtol):
        model = IRevNetClassifier(
            IRevNet(dtype=dtype, **CIFAR_LIKE), 10, dtype=dtype
        )
        randomize_batch_norm(model)
        x = np.random.rand(2, 16, 16, 3).astype(dtype)
        self.assertEqual(model(x).shape, (2, 10))
        self.assert_invertible(model.backbone, x, rtol)
        features = model.features(x)
        self.assertAllClose(
            model.logits_from_features(features), model(x), atol=1e-6
        )
        self.assertLessEqual(
            np.linalg.norm(model.inverse(features) - x) / np.linalg.norm(x),
            rtol,
        )

    def test_fit(self):
        model = IRevNetClassifier(IRevNet(**CIFAR_LIKE), 4)
        model.compile(
            keras.optimizers.SGD(0.01, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        x = np.random.rand(8, 16, 16, 3).astype("float32")
        y = np.arange(8) % 4
        before = [w.numpy().copy() for w in model.trainable_weights]
        history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        self.assertTrue(np.isfinite(history.history["loss"][0]))
        unchanged = {
            w.path.split("/", 1)[1]
            for b, w in zip(before, model.trainable_weights)
            if np.array_equal(b, w.numpy())
        }
        # The first block's F only ever sees the zero padding (as in the
        # authors' CIFAR model): in training mode its BatchNorms output
        # relu(beta = 0) = 0, so none of its weights get a gradient.
        self.assertEqual(
            unchanged,
            {
                f"block0/residual/{name}"
                for name in (
                    "conv1/kernel",
                    "bn2/gamma",
                    "bn2/beta",
                    "conv2/kernel",
                    "bn3/gamma",
                    "bn3/beta",
                    "conv3/kernel",
                )
            },
        )

    def test_from_preset_overrides(self):
        model = IRevNetClassifier.from_preset(
            "cifar10", num_classes=100, stage_depths=[1, 1, 1], dropout_rate=0.0
        )
        self.assertEqual(model.num_classes, 100)
        self.assertEqual(model.backbone.stage_depths, [1, 1, 1])
        self.assertEqual(model.backbone.dropout_rate, 0.0)

    def test_serialization(self):
        model = IRevNetClassifier(IRevNet(**CIFAR_LIKE), 10)
        randomize_batch_norm(model)
        self.assert_config_complete(model)
        self.run_serialization_test(
            model, np.random.rand(2, 16, 16, 3).astype("float32")
        )

    def test_invalid_arguments(self):
        with self.assertRaisesRegex(ValueError, r"num_classes=0"):
            IRevNetClassifier(IRevNet(**CIFAR_LIKE), 0)
        with self.assertRaisesRegex(ValueError, r"must be an IRevNet"):
            IRevNetClassifier(keras.layers.Dense(3), 10)
