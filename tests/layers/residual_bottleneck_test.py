import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from irevnet_tf import ResidualBottleneck
from irevnet_tf.testing.test_case import TestCase

_INVALID_ARGUMENTS_CASES = [
    (dict(out_channels=8, strides=3), r"strides.*Received: strides=3"),
    (
        dict(out_channels=8, kernel_sizes=(3, 2, 3)),
        r"kernel_sizes=\(3, 2, 3\)",
    ),
    (
        dict(out_channels=8, kernel_sizes=(3, 3)),
        r"kernel_sizes=\(3, 3\)",
    ),
    (dict(out_channels=2), r"out_channels.*Received: out_channels=2"),
    (dict(out_channels=8, dropout_rate=1.0), r"dropout_rate=1.0"),
    (
        dict(out_channels=8, bottleneck_divisor=0),
        r"bottleneck_divisor=0",
    ),
]


class ResidualBottleneckTest(TestCase):
    def test_shapes_and_weights(self):
        layer = ResidualBottleneck(16, strides=2)
        y = layer(np.random.rand(2, 8, 8, 8).astype("float32"))
        self.assertEqual(y.shape, (2, 4, 4, 16))
        shapes = [tuple(w.shape) for w in layer.trainable_weights]
        # bn1 (8), conv1 3x3 8->4, bn2, conv2 4->4, bn3, conv3 4->16.
        self.assertCountEqual(
            shapes,
            [
                (8,),
                (8,),
                (3, 3, 8, 4),
                (4,),
                (4,),
                (3, 3, 4, 4),
                (4,),
                (4,),
                (3, 3, 4, 16),
            ],
        )

    def test_paper_kernel_sizes(self):
        layer = ResidualBottleneck(16, kernel_sizes=(1, 3, 1), strides=2)
        self.assertEqual(
            layer(np.zeros((1, 8, 8, 8), "float32")).shape, (1, 4, 4, 16)
        )
        self.assertEqual(layer.conv1.kernel.shape, (1, 1, 8, 4))
        self.assertEqual(layer.conv3.kernel.shape, (1, 1, 4, 16))

    def test_without_preactivation(self):
        layer = ResidualBottleneck(16, preactivate=False)
        layer.build((None, 8, 8, 16))
        self.assertIsNone(layer.bn1)
        self.assertLen(layer.trainable_weights, 7)

    def test_stride_two_pads_like_pytorch(self):
        # PyTorch pads 1 pixel on every side; Keras "same" at stride 2 pads
        # only bottom/right on even inputs and computes something else.
        layer = ResidualBottleneck(4, strides=2, preactivate=False)
        x = np.random.rand(1, 6, 6, 2).astype("float32")
        actual = layer(x)

        def rest(h):
            h = layer.conv2(tf.nn.relu(layer.bn2(h)))
            return layer.conv3(tf.nn.relu(layer.bn3(h)))

        kernel = layer.conv1.kernel
        symmetric = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        expected = rest(tf.nn.conv2d(symmetric, kernel, 2, "VALID"))
        keras_same = rest(tf.nn.conv2d(x, kernel, 2, "SAME"))
        self.assertAllClose(actual, expected, atol=1e-6, rtol=0)
        self.assertGreater(
            float(tf.reduce_max(tf.abs(keras_same - expected))), 1e-3
        )

    def test_standalone_dropout_is_seeded(self):
        # Without `dropout_seed`, a layer of its own draws fresh masks from
        # its seed generator: reproducible from `seed`, new every call.
        x = np.random.rand(2, 8, 8, 4).astype("float32")

        def two_calls(seed):
            layer = ResidualBottleneck(8, dropout_rate=0.5, seed=seed)
            layer.build(x.shape)
            layer.set_weights(reference.get_weights())
            return [layer(x, training=True) for _ in range(2)]

        reference = ResidualBottleneck(8, dropout_rate=0.5)
        reference.build(x.shape)
        first, second = two_calls(seed=5)
        self.assertGreater(float(tf.reduce_max(tf.abs(first - second))), 1e-3)
        self.assertAllEqual(two_calls(seed=5)[0], first)
        seed = tf.constant([1, 2])
        self.assertAllEqual(
            reference(x, training=True, dropout_seed=seed),
            reference(x, training=True, dropout_seed=seed),
        )

    def test_dropout_seeds_from_caller(self):
        # Inside an IRevNet, the model supplies every mask seed: the layer
        # holds no generator and refuses to draw masks without a seed.
        layer = ResidualBottleneck(
            8, dropout_rate=0.5, _dropout_seeds_from_caller=True
        )
        x = np.random.rand(2, 8, 8, 4).astype("float32")
        self.assertIsNone(layer.seed_generator)
        self.assertEqual(
            layer(x, training=True, dropout_seed=[1, 2]).shape, (2, 8, 8, 8)
        )
        with self.assertRaisesRegex(ValueError, r"dropout_seed=None"):
            layer(x, training=True)
        self.assertNotIn("_dropout_seeds_from_caller", layer.get_config())

    def test_serialization(self):
        layer = ResidualBottleneck(
            8, strides=2, kernel_sizes=(1, 3, 1), dropout_rate=0.1, seed=3
        )
        self.assert_config_complete(layer)
        self.run_serialization_test(layer, np.random.rand(2, 8, 8, 4))

    @parameterized.parameters(*_INVALID_ARGUMENTS_CASES)
    def test_invalid_arguments(self, kwargs, message):
        with self.assertRaisesRegex(ValueError, message):
            ResidualBottleneck(**kwargs)
