import numpy as np
from absl.testing import parameterized

from irevnet_tf import IRevNetBlock
from irevnet_tf.layers.stream_precision import round_to_grid
from irevnet_tf.testing.test_case import TestCase
from irevnet_tf.testing.test_case import randomize_batch_norm


def halves(in_channels, size=8, batch=3, dtype="float32"):
    first = in_channels // 2
    return (
        np.random.rand(batch, size, size, first).astype(dtype) + 0.1,
        np.random.rand(batch, size, size, in_channels - first).astype(dtype)
        + 0.1,
    )


# (in_channels, out_channels, strides, preactivate): bijective, down-sampling,
# injective (the CIFAR model's first block), and the ImageNet first block.
CASES = (
    ("bijective", 32, 16, 1, True),
    ("downsampling", 16, 32, 2, True),
    ("injective_first", 3, 16, 1, False),
    ("injective", 24, 16, 1, True),
    ("downsampling_first", 4, 8, 2, False),
)


class IRevNetBlockTest(TestCase):
    @parameterized.named_parameters(
        (f"{case[0]}_{dtype}", *case[1:], dtype, rtol)
        for case in CASES
        for dtype, rtol in (("float32", 1e-5), ("float64", 1e-12))
    )
    def test_invertible(
        self, in_channels, out_channels, strides, preactivate, dtype, rtol
    ):
        block = IRevNetBlock(
            in_channels,
            out_channels,
            strides,
            preactivate=preactivate,
            dtype=dtype,
        )
        x = halves(in_channels, dtype=dtype)
        block(x)
        randomize_batch_norm(block)
        # Injective blocks invert only from the image of `call`.
        self.assert_invertible(
            block,
            x,
            rtol=rtol,
            check_right_inverse=in_channels == 2 * out_channels or strides == 2,
        )

    @parameterized.named_parameters(
        (f"{case[0]}_{name}", *case[1:], policy)
        for case in CASES
        for name, policy in (
            ("float16", "mixed_float16"),
            ("bfloat16", "mixed_bfloat16"),
        )
    )
    def test_mixed_precision_inverse_is_bit_exact_on_the_grid(
        self, in_channels, out_channels, strides, preactivate, policy
    ):
        # F computes in float16/bfloat16, its output is cast to float32 and
        # rounded to the stream's grid: on inputs on the grid, the float32
        # coupling and its inverse are exact (see stream_precision).
        block = IRevNetBlock(
            in_channels,
            out_channels,
            strides,
            preactivate=preactivate,
            dtype=policy,
        )
        x = tuple(round_to_grid(h) for h in halves(in_channels))
        block(x)
        randomize_batch_norm(block)
        y = block(x)
        self.assertEqual([t.dtype for t in y], ["float32"] * 2)
        restored = block.inverse(y)
        for r, h in zip(restored, x):
            self.assertAllEqual(r, h)

    def test_semantics_match_the_authors(self):
        # y1 = S(x2), y2 = S(x1) + F(x2): the halves swap every block.
        block = IRevNetBlock(16, 32, strides=2)
        x1, x2 = halves(16)
        y1, y2 = block((x1, x2))
        downsampled = [block.downsampling(h) for h in (x1, x2)]
        self.assertAllEqual(y1, downsampled[1])
        self.assertAllClose(y2, downsampled[0] + block.residual(x2), atol=1e-6)

    def test_injective_block_pads_then_splits(self):
        block = IRevNetBlock(3, 16, preactivate=False)
        x1, x2 = halves(3)
        y1, y2 = block((x1, x2))
        self.assertEqual(block.padding.channels, 29)
        # x2 after padding is all zeros, so F only ever sees zeros (as in
        # the authors' CIFAR model, whose first block pads 3 channels to 32).
        self.assertAllEqual(y1, np.zeros_like(y1))
        self.assertAllClose(
            y2[..., :3] - block.residual(np.zeros((3, 8, 8, 16)))[..., :3],
            np.concatenate([x1, x2], -1),
            atol=1e-6,
        )

    def test_inverse_builds_an_unbuilt_block(self):
        block = IRevNetBlock(16, 32, strides=2)
        x1, x2 = block.inverse(halves(64, size=4))
        self.assertEqual(x1.shape, (3, 8, 8, 8))
        self.assertTrue(block.built)

    def test_serialization(self):
        block = IRevNetBlock(8, 16, strides=2, dropout_rate=0.2, seed=1)
        self.assert_config_complete(block)
        self.run_serialization_test(block, halves(8))

    @parameterized.named_parameters(
        (
            "odd_in_channels",
            dict(in_channels=3, out_channels=6, strides=2),
            r"even.*in_channels=3",
        ),
        (
            "stride2_width",
            dict(in_channels=8, out_channels=8, strides=2),
            r"2 \* in_channels = 16.*out_channels=8",
        ),
        (
            "negative_padding",
            dict(in_channels=64, out_channels=16),
            r"negative \(-32\).*in_channels=64",
        ),
        (
            "strides",
            dict(in_channels=8, out_channels=8, strides=3),
            r"strides=3",
        ),
        ("no_channels", dict(in_channels=0, out_channels=8), r"in_channels=0"),
    )
    def test_invalid_arguments(self, kwargs, message):
        with self.assertRaisesRegex(ValueError, message):
            IRevNetBlock(**kwargs)

    def test_wrong_input_halves(self):
        block = IRevNetBlock(16, 8)
        with self.assertRaisesRegex(
            ValueError, r"8 and 8 channels.*\(3, 8, 8, 4\)"
        ):
            block(halves(8) * 1)
        with self.assertRaisesRegex(ValueError, "pair of tensors"):
            block(np.zeros((1, 4, 4, 16), "float32"))
