import numpy as np
from absl.testing import parameterized

from irevnet_tf import IRevNet
from irevnet_tf.testing.layouts import CIFAR_LIKE
from irevnet_tf.testing.layouts import IMAGENET_LIKE
from irevnet_tf.testing.test_case import TestCase
from irevnet_tf.testing.test_case import randomize_batch_norm


def images(shape, batch=2, dtype="float32"):
    return np.random.rand(batch, *shape).astype(dtype)


# Non-trivial input statistics per layout: the authors' CIFAR-10 ones for
# the three-channel layout, the digits' for the one-channel layout.
_STATISTICS = {
    "cifar": dict(
        input_mean=[0.4914, 0.4822, 0.4465], input_std=[0.2023, 0.1994, 0.2010]
    ),
    "imagenet": dict(input_mean=[0.3054], input_std=[0.3760]),
}
_LAYOUTS = {"cifar": CIFAR_LIKE, "imagenet": IMAGENET_LIKE}


_INVALID_ARGUMENTS_CASES = [
    (
        dict(stage_depths=[2, 2]),
        r"same length.*stage_depths of length 2",
    ),
    (dict(stage_strides=[1, 3, 2]), r"stage_strides=\[1, 3, 2\]"),
    (dict(stage_depths=[2, 0, 2]), r"stage_depths=\[2, 0, 2\]"),
    (
        dict(image_shape=(18, 16, 3)),
        r"divisible by 4.*image_shape=\(18, 16, 3\)",
    ),
    (dict(image_shape=(16, 16, None)), r"channel count"),
    (dict(initial_block_size=0), r"initial_block_size=0"),
    (
        dict(stage_filters=[16, 64, 64]),
        r"stage_filters\[2\]=64.*out_channels",
    ),
    (
        dict(stage_filters=[1, 4, 16]),
        r"Stage 0 .*negative.*in_channels=3, out_channels=1",
    ),
]


class IRevNetTest(TestCase):
    @parameterized.product(
        layout=("cifar", "imagenet"),
        dtype_and_rtol=(("float32", 1e-5), ("float64", 1e-12)),
    )
    def test_invertible(self, layout, dtype_and_rtol):
        dtype, rtol = dtype_and_rtol
        kwargs = {"cifar": CIFAR_LIKE, "imagenet": IMAGENET_LIKE}[layout]
        backbone = IRevNet(dtype=dtype, **kwargs)
        randomize_batch_norm(backbone)
        self.assert_invertible(
            backbone, images(kwargs["image_shape"], dtype=dtype), rtol
        )

    @parameterized.product(
        layout=("cifar", "imagenet"),
        dtype_and_rtol=(("float32", 1e-5), ("float64", 1e-12)),
    )
    def test_invertible_with_input_statistics(self, layout, dtype_and_rtol):
        # The same tolerances as without statistics: the standardisation
        # adds one rounding per operation (about 1e-7 in float32).
        dtype, rtol = dtype_and_rtol
        kwargs = dict(_LAYOUTS[layout], **_STATISTICS[layout])
        backbone = IRevNet(dtype=dtype, **kwargs)
        randomize_batch_norm(backbone)
        self.assertIs(backbone.invertible_layers[0], backbone.standardization)
        self.assert_invertible(
            backbone, images(kwargs["image_shape"], dtype=dtype), rtol
        )

    @parameterized.named_parameters(
        ("cifar", "cifar"), ("imagenet", "imagenet")
    )
    def test_input_statistics_standardise_pixels(self, layout):
        statistics = _STATISTICS[layout]
        plain = IRevNet(dtype="float64", **_LAYOUTS[layout])
        standardizing = IRevNet(
            dtype="float64", **_LAYOUTS[layout], **statistics
        )
        randomize_batch_norm(plain)
        standardizing.set_weights(plain.get_weights())
        mean = np.array(statistics["input_mean"])
        std = np.array(statistics["input_std"])
        pixels = images(_LAYOUTS[layout]["image_shape"], dtype="float64")
        features = standardizing(pixels)
        # float64: the two differ by the rounding of (x - mean) / std alone.
        self.assertAllClose(
            features, plain((pixels - mean) / std), rtol=1e-12, atol=1e-12
        )
        self.assertAllClose(
            standardizing.inverse(features),
            plain.inverse(features) * std + mean,
            rtol=1e-12,
            atol=1e-12,
        )
        self.assertAllClose(
            standardizing.inverse(features), pixels, rtol=1e-12, atol=1e-12
        )
        # One layer per chain position: the other outputs are unchanged.
        self.assertAllClose(
            standardizing.block_outputs(pixels)[0],
            plain.block_outputs((pixels - mean) / std)[0],
            rtol=1e-12,
            atol=1e-12,
        )

    def test_without_statistics_images_enter_unchanged(self):
        backbone = IRevNet(**CIFAR_LIKE)
        self.assertIsNone(backbone.standardization)
        self.assertIs(backbone.invertible_layers[0], backbone.split)
        config = backbone.get_config()
        self.assertIsNone(config["input_mean"])
        self.assertIsNone(config["input_std"])
        # A config written before the statistics existed: no such keys.
        del config["input_mean"], config["input_std"]
        old = IRevNet.from_config(config)
        self.assertIsNone(old.standardization)
        old.set_weights(backbone.get_weights())
        x = images((16, 16, 3))
        self.assertAllEqual(old(x), backbone(x))

    def test_one_statistic_alone(self):
        backbone = IRevNet(input_std=0.5, **CIFAR_LIKE)
        self.assertEqual(backbone.input_mean, [0.0])
        self.assertEqual(backbone.input_std, [0.5])
        x = images((16, 16, 3))
        self.assertAllClose(backbone.inverse(backbone(x)), x, atol=1e-5)

    def test_serialization_with_input_statistics(self):
        backbone = IRevNet(**CIFAR_LIKE, **_STATISTICS["cifar"])
        randomize_batch_norm(backbone)
        self.assertEqual(
            backbone.get_config()["input_std"], [0.2023, 0.1994, 0.2010]
        )
        self.run_serialization_test(backbone, images((16, 16, 3)))

    @parameterized.named_parameters(
        ("zero_std", dict(input_std=[0.2, 0.0, 0.2]), r"input_std.*positive"),
        ("nan_mean", dict(input_mean=float("nan")), r"input_mean.*finite"),
        ("text", dict(input_mean="a"), r"input_mean.*number"),
        (
            "channels",
            dict(input_mean=[0.5, 0.5]),
            r"2 values for 3 channels.*mean=\[0.5, 0.5\]",
        ),
    )
    def test_invalid_input_statistics(self, overrides, message):
        with self.assertRaisesRegex(ValueError, message):
            IRevNet(**CIFAR_LIKE, **overrides)

    def test_cifar10_preset_invertible_in_float32(self):
        backbone = IRevNet.from_preset("cifar10")
        x = images((32, 32, 3), batch=4)
        backbone(x, training=True)  # moving statistics no longer trivial
        # The authors' code reaches 6.5e-8 on this model.
        self.assert_invertible(backbone, x, rtol=1e-5)

    def test_feature_shape(self):
        backbone = IRevNet(**IMAGENET_LIKE)
        features = backbone(images((32, 32, 1)))
        self.assertEqual(features.shape, (2, 1, 1, 1024))
        self.assertEqual(backbone.feature_shape, (1, 1, 1024))
        self.assertEqual(backbone.downsampling_factor, 32)

    def test_other_image_sizes(self):
        backbone = IRevNet(**dict(CIFAR_LIKE, image_shape=(None, None, 3)))
        x = images((24, 40, 3))
        self.assertEqual(backbone(x).shape, (2, 6, 10, 512))
        self.assertAllClose(backbone.inverse(backbone(x)), x, atol=1e-5)

    def test_block_outputs(self):
        backbone = IRevNet(**CIFAR_LIKE)
        x = images((16, 16, 3))
        outputs = backbone.block_outputs(x)
        self.assertLen(outputs, 6)
        self.assertEqual(
            [tuple(o.shape[1:]) for o in outputs],
            [(16, 16, 32)] * 2 + [(8, 8, 128)] * 2 + [(4, 4, 512)] * 2,
        )
        self.assertAllClose(outputs[-1], backbone(x), atol=0, rtol=0)

    def test_one_seed_generator_for_the_dropout_of_all_blocks(self):
        backbone = IRevNet(dropout_rate=0.1, seed=3, **CIFAR_LIKE)
        self.assertIsNotNone(backbone.seed_generator)
        for block in backbone.blocks:
            self.assertIsNone(block.residual.seed_generator, block.name)
        seed_states = [
            v for v in backbone.variables if "seed_generator" in v.path
        ]
        self.assertEqual(
            seed_states,
            [backbone.seed_generator.state],
            [v.path for v in seed_states],
        )
        # Training-mode calls draw new masks; inference has none.
        x = images((16, 16, 3))
        self.assertNotAllClose(
            backbone(x, training=True), backbone(x, training=True)
        )
        self.assertAllEqual(backbone(x), backbone(x))
        with self.assertRaisesRegex(ValueError, r"block1.*dropout_seed=None"):
            backbone.blocks[1](
                backbone.blocks[0](backbone.split(x)), training=True
            )

    def test_serialization(self):
        backbone = IRevNet(**dict(CIFAR_LIKE, kernel_sizes=(1, 3, 1), seed=2))
        self.assert_config_complete(backbone)
        self.run_serialization_test(backbone, images((16, 16, 3)))

    @parameterized.parameters(*_INVALID_ARGUMENTS_CASES)
    def test_invalid_arguments(self, overrides, message):
        with self.assertRaisesRegex(ValueError, message):
            IRevNet(**dict(CIFAR_LIKE, **overrides))

    def test_odd_channels_cannot_be_downsampled_in_halves(self):
        with self.assertRaisesRegex(
            ValueError, r"Stage 0 .*even.*in_channels=3"
        ):
            IRevNet(
                **dict(
                    IMAGENET_LIKE,
                    initial_block_size=1,
                    image_shape=(32, 32, 3),
                    stage_filters=[6, 12, 24, 48],
                )
            )

    def test_unknown_preset(self):
        with self.assertRaisesRegex(
            ValueError, r"Unknown preset 'resnet50'.*cifar10"
        ):
            IRevNet.from_preset("resnet50")
