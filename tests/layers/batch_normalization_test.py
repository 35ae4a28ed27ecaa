import functools
import os

import keras
import numpy as np
import tensorflow as tf
import torch
from absl.testing import parameterized

from irevnet_tf import IRevNet
from irevnet_tf import IRevNetClassifier
from irevnet_tf.layers.batch_normalization import BatchNormalization
from irevnet_tf.models.irevnet_presets import PRESETS
from irevnet_tf.reconstruction_error import relative_error
from irevnet_tf.testing.layouts import CIFAR_LIKE
from irevnet_tf.testing.strategies import mirrored_strategy
from irevnet_tf.testing.test_case import TestCase

# Channels of the two training-mode paths of the fused dtypes: TensorFlow's
# fused kernel, and pixels folded into rows for at most 4 channels (4 x 6
# pixels of 4 channels fold into rows of 8 pixels).
PATHS = {"fused": 5, "folded": 4}
CHANNELS = PATHS["fused"]
# Keras momentum 0.9 is PyTorch's 0.1.
MOMENTUM = 0.9
EPSILON = 1e-5
REGIMES = {"eager": None, "graph": False, "xla": True}
# Relative agreement with PyTorch's float64 layer, measured (eager, graph,
# XLA, oneDNN on and off): at most 3e-16 in float64 (Keras's separate ops),
# 1.4e-7 in float32 (the fused kernel and the folded rows).
TOLERANCES = {"float64": 1e-14, "float32": 1e-6}
CASES = [
    (f"{dtype}_{regime}_{path}", dtype, regime, channels)
    for dtype in TOLERANCES
    for regime in REGIMES
    for path, channels in PATHS.items()
]


def inputs(dtype, shape=None, seed=0, channels=CHANNELS):
    shape = shape or (4, 4, 6, channels)
    rng = np.random.default_rng(seed)
    return (3.0 * rng.normal(size=shape) + 1.0).astype(dtype)


def norm(dtype="float32", channels=CHANNELS, **kwargs):
    layer = BatchNormalization(
        momentum=MOMENTUM, epsilon=EPSILON, dtype=dtype, **kwargs
    )
    layer.build((None, None, None, channels))
    rng = np.random.default_rng(1)
    for variable, value in (
        (layer.gamma, rng.uniform(0.5, 1.5, channels)),
        (layer.beta, rng.normal(size=channels)),
        (layer.moving_mean, rng.normal(size=channels)),
        (layer.moving_variance, rng.uniform(0.5, 2.0, channels)),
    ):
        variable.assign(value.astype(variable.dtype))
    return layer


def pytorch_twin(layer):
    """PyTorch's BatchNorm2d (the authors' layer) with `layer`'s state."""
    twin = torch.nn.BatchNorm2d(
        layer.gamma.shape[0],
        eps=EPSILON,
        momentum=1 - MOMENTUM,
        dtype=torch.float64,
    )
    with torch.no_grad():
        for name, variable in (
            ("weight", layer.gamma),
            ("bias", layer.beta),
            ("running_mean", layer.moving_mean),
            ("running_var", layer.moving_variance),
        ):
            getattr(twin, name).copy_(torch.from_numpy(np.float64(variable)))
    return twin


def call(layer, x, regime, **kwargs):
    jit = REGIMES[regime]
    function = functools.partial(layer, training=True, **kwargs)
    if jit is not None:
        function = tf.function(function, jit_compile=jit)
    return function(tf.constant(x))


class BatchNormalizationTest(TestCase):
    @parameterized.named_parameters(CASES)
    def test_unbiased_moving_variance_is_pytorchs(
        self, dtype, regime, channels
    ):
        layer = norm(dtype, channels, unbiased_moving_variance=True)
        twin = pytorch_twin(layer).train()
        tolerance = TOLERANCES[dtype]
        for step in range(2):
            x = inputs(dtype, seed=step, channels=channels)
            outputs = call(layer, x, regime)
            expected = twin(torch.from_numpy(np.float64(x)).permute(0, 3, 1, 2))
            expected = expected.detach().permute(0, 2, 3, 1).numpy()
            self.assertLess(relative_error(outputs, expected), tolerance)
        for variable, buffer in (
            (layer.moving_mean, twin.running_mean),
            (layer.moving_variance, twin.running_var),
        ):
            self.assertLess(relative_error(variable, buffer), tolerance)

    @parameterized.named_parameters(CASES)
    def test_default_keeps_keras_biased_update(self, dtype, regime, channels):
        layer = norm(dtype, channels)
        self.assertFalse(layer.unbiased_moving_variance)
        keras_layer = keras.layers.BatchNormalization(
            momentum=MOMENTUM, epsilon=EPSILON, dtype=dtype
        )
        keras_layer.build((None, None, None, channels))
        keras_layer.set_weights(layer.get_weights())
        x = inputs(dtype, channels=channels)
        outputs = call(layer, x, regime)
        expected = keras_layer(x, training=True)
        tolerance = TOLERANCES[dtype]
        self.assertLess(relative_error(outputs, expected), tolerance)
        for actual, wanted in zip(layer.weights, keras_layer.weights):
            self.assertLess(relative_error(actual, wanted), tolerance)
        # The update differs from the unbiased one by the factor n / (n - 1).
        unbiased = norm(dtype, channels, unbiased_moving_variance=True)
        call(unbiased, x, regime)
        n = x.size // channels
        batch_variance = x.reshape(-1, channels).var(axis=0)
        self.assertAllClose(
            unbiased.moving_variance - layer.moving_variance,
            (1 - MOMENTUM) * batch_variance / (n - 1),
            rtol=1e-4,
        )

    @parameterized.named_parameters(
        (f"{name}_{update}", dtype, regime, channels, unbiased)
        for name, dtype, regime, channels in CASES
        for update, unbiased in (("biased", False), ("unbiased", True))
    )
    def test_recomputation_is_bit_identical_and_updates_nothing(
        self, dtype, regime, channels, unbiased_moving_variance
    ):
        layer = norm(
            dtype, channels, unbiased_moving_variance=unbiased_moving_variance
        )
        before = [v.numpy() for v in layer.non_trainable_variables]
        x = inputs(dtype, channels=channels)
        again = call(layer, x, regime, update_statistics=False)
        for variable, old in zip(layer.non_trainable_variables, before):
            self.assertAllEqual(variable, old)
        first = call(layer, x, regime)
        self.assertAllEqual(again, first)
        moved = [
            not np.array_equal(variable, old)
            for variable, old in zip(layer.non_trainable_variables, before)
        ]
        self.assertEqual(moved, [True, True])

    @parameterized.named_parameters(
        (f"{regime}_{path}", regime, channels)
        for regime in REGIMES
        for path, channels in PATHS.items()
    )
    def test_channels_with_a_large_mean(self, regime, channels):
        # XLA's fused kernel computes E[x^2] - E[x]^2, 160 times the
        # variance here without the layer's shift; measured with it: 1e-5.
        x = inputs("float64", channels=channels) * 0.01 + 100.0
        layer = norm("float32", channels, unbiased_moving_variance=True)
        twin = pytorch_twin(layer).train()
        outputs = call(layer, x.astype("float32"), regime)
        expected = twin(torch.from_numpy(x).permute(0, 3, 1, 2))
        expected = expected.detach().permute(0, 2, 3, 1).numpy()
        self.assertLess(relative_error(outputs, expected), 1e-3)
        self.assertLess(
            relative_error(layer.moving_variance, twin.running_var), 1e-4
        )

    @parameterized.named_parameters(
        (f"{mode}_{path}", jit_compile, channels)
        for mode, jit_compile in (("graph", False), ("xla", True))
        for path, channels in PATHS.items()
    )
    def test_float32_gradients_match_float64(self, jit_compile, channels):
        # float32 takes the fused kernel and its registered gradient, or the
        # folded rows; float64 Keras's separate ops; measured 3e-7 apart.
        x = inputs("float64", channels=channels)
        gradients = {}
        for dtype in ("float32", "float64"):
            layer = norm(dtype, channels, unbiased_moving_variance=True)

            @tf.function(jit_compile=jit_compile)
            def gradient(x, layer=layer):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = layer(x, training=True)
                    loss = tf.reduce_sum(y**3)
                return tape.gradient(loss, [x] + layer.trainable_variables)

            gradients[dtype] = gradient(tf.constant(x.astype(dtype)))
        for actual, expected in zip(gradients["float32"], gradients["float64"]):
            self.assertLess(relative_error(actual, expected), 1e-5)

    def test_few_channels_fold_pixels_into_rows(self):
        # Which arithmetic serves which inputs: the fused kernel, or folded
        # rows where every image's pixels fill whole rows.
        def training_ops(channels, shape):
            layer = norm("float32", channels)
            graph = tf.function(lambda x: layer(x, training=True))
            x = tf.TensorSpec((None,) + shape + (channels,), "float32")
            concrete = graph.get_concrete_function(x)
            return {op.type for op in concrete.graph.get_operations()}

        self.assertIn("FusedBatchNormV3", training_ops(5, (4, 6)))
        self.assertNotIn("FusedBatchNormV3", training_ops(4, (4, 6)))
        self.assertNotIn("FusedBatchNormV3", training_ops(1, (2, 2)))
        # 15 pixels of 4 channels fill no row of 2 or more pixels.
        self.assertIn("FusedBatchNormV3", training_ops(4, (3, 5)))
        self.assertIn("FusedBatchNormV3", training_ops(4, (None, 6)))

    @parameterized.named_parameters(PATHS.items())
    def test_mixed_precision_outputs_in_the_compute_dtype(self, channels):
        layer = norm("mixed_float16", channels, unbiased_moving_variance=True)
        x = inputs("float16", channels=channels)
        outputs = layer(x, training=True)
        self.assertEqual(outputs.dtype, "float16")
        self.assertEqual(layer.moving_variance.dtype, "float32")
        twin = pytorch_twin(
            norm("float32", channels, unbiased_moving_variance=True)
        )
        twin.train()(torch.from_numpy(np.float64(x)).permute(0, 3, 1, 2))
        # float16 inputs hold 11 bits.
        self.assertLess(
            relative_error(layer.moving_variance, twin.running_var), 1e-3
        )

    def test_synchronized_statistics_count_every_replica(self):
        # Two replicas of 2 images each: the unbiased variance divides by
        # 4 * H * W - 1, as on one device with the whole batch.
        strategy = mirrored_strategy()
        x = inputs("float32")
        with strategy.scope():
            layer = norm(
                "float32", synchronized=True, unbiased_moving_variance=True
            )
        dataset = tf.data.Dataset.from_tensors(x).unbatch().batch(4)
        for batch in strategy.experimental_distribute_dataset(dataset):
            strategy.run(lambda b: layer(b, training=True), args=(batch,))
        twin = pytorch_twin(norm("float32")).train()
        twin(torch.from_numpy(np.float64(x)).permute(0, 3, 1, 2))
        self.assertLess(
            relative_error(layer.moving_variance, twin.running_var), 1e-6
        )

    def test_config(self):
        layer = BatchNormalization(unbiased_moving_variance=True)
        config = layer.get_config()
        self.assertTrue(config["unbiased_moving_variance"])
        self.assertTrue(
            BatchNormalization.from_config(config).unbiased_moving_variance
        )
        # Layers saved before the option existed keep Keras's update.
        del config["unbiased_moving_variance"]
        self.assertFalse(
            BatchNormalization.from_config(config).unbiased_moving_variance
        )

    def test_models_saved_without_the_option_keep_keras_update(self):
        model = IRevNetClassifier(
            IRevNet(**CIFAR_LIKE, unbiased_moving_variance=True),
            num_classes=3,
        )
        self.assertEqual(batch_norm_options(model), {True})
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        self.assertEqual(
            batch_norm_options(keras.saving.load_model(path)), {True}
        )
        # A backbone config written before the option existed.
        config = model.backbone.get_config()
        del config["unbiased_moving_variance"]
        old = IRevNetClassifier(IRevNet.from_config(config), num_classes=3)
        self.assertEqual(batch_norm_options(old), {False})

    def test_the_authors_presets_move_variances_as_pytorch(self):
        # The authors' and the paper's models; digits is this project's own.
        for name in ("cifar10", "irevnet301", "irevnet300"):
            self.assertIs(PRESETS[name]["unbiased_moving_variance"], True)
        self.assertIs(
            PRESETS["irevnet_injective"]["unbiased_moving_variance"], True
        )
        self.assertNotIn("unbiased_moving_variance", PRESETS["digits"])

    def test_masks_and_renorm_refuse_the_unbiased_update(self):
        x = inputs("float32", shape=(2, 3, CHANNELS))
        layer = BatchNormalization(unbiased_moving_variance=True)
        with self.assertRaisesRegex(ValueError, "Received: mask=a tensor"):
            layer(x, training=True, mask=np.ones((2, 3), bool))
        renorm = BatchNormalization(renorm=True)
        with self.assertRaisesRegex(ValueError, "renorm=True"):
            renorm(x, training=True, update_statistics=False)
        # Keras's own update still serves masks.
        BatchNormalization()(x, training=True, mask=np.ones((2, 3), bool))


def batch_norm_options(model):
    """The `unbiased_moving_variance` values of a model's BatchNorms."""
    found = {}
    stack = [model]
    while stack:
        layer = stack.pop()
        if isinstance(layer, BatchNormalization):
            found[id(layer)] = layer.unbiased_moving_variance
        for value in vars(layer).values():
            values = value if isinstance(value, (list, tuple)) else [value]
            stack += [v for v in values if isinstance(v, keras.layers.Layer)]
    # The head's and at least one per block.
    assert len(found) > sum(CIFAR_LIKE["stage_depths"]), len(found)
    return set(found.values())
