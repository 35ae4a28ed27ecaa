import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from irevnet_tf.datasets import preprocessing
from irevnet_tf.testing.test_case import TestCase


def random_image(height, width, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(height, width, channels)).astype(np.float32)


class CifarAugmentationTest(TestCase):
    def test_output_is_a_padded_crop_maybe_flipped(self):
        image = random_image(32, 32)
        padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
        candidates = [
            window
            for dy in range(9)
            for dx in range(9)
            for window in (
                padded[dy : dy + 32, dx : dx + 32],
                padded[dy : dy + 32, dx : dx + 32][:, ::-1],
            )
        ]
        outputs = []
        for seed in range(6):
            output = preprocessing.pad_crop_flip(
                image, tf.constant([seed, 7]), 32
            ).numpy()
            matches = [np.array_equal(output, c) for c in candidates]
            self.assertEqual(sum(matches), 1, f"seed {seed}")
            outputs.append(matches.index(True))
        self.assertGreater(len(set(outputs)), 1, "always the same crop")

    def test_padding_scales_with_the_size(self):
        # 2 pixels at 16 (size // 8): corners of the crop may be padding.
        image = np.ones((16, 16, 1), np.float32)
        zeros = [
            float(
                np.sum(
                    preprocessing.pad_crop_flip(
                        image, tf.constant([seed, 0]), 16
                    ).numpy()
                    == 0
                )
            )
            for seed in range(10)
        ]
        self.assertLessEqual(max(zeros), 16 * 16 - 14 * 14)
        self.assertGreater(max(zeros), 0)


class ImagenetPreprocessingTest(TestCase):
    def test_eval_resizes_shorter_side_then_centre_crops(self):
        image = random_image(256, 300)
        output = preprocessing.resize_and_centre_crop(image, 224).numpy()
        # 256 is already 224 * 256 / 224: only the centre crop remains.
        self.assertAllClose(output, image[16:240, 38:262], atol=1e-6)

    @parameterized.named_parameters(
        ("tall", (100, 50, 3)), ("wide", (50, 120, 3)), ("square", (64, 64, 3))
    )
    def test_eval_transform_shape(self, shape):
        transform = preprocessing.eval_transform("imagenet", 64)
        output = transform(random_image(*shape))
        self.assertEqual(output.shape, (64, 64, 3))

    def test_augment_is_seeded_and_in_range(self):
        image = random_image(120, 90)
        first = preprocessing.imagenet_augment(image, tf.constant([1, 2]), 48)
        again = preprocessing.imagenet_augment(image, tf.constant([1, 2]), 48)
        other = preprocessing.imagenet_augment(image, tf.constant([3, 2]), 48)
        self.assertEqual(first.shape, (48, 48, 3))
        self.assertAllEqual(first, again)
        self.assertNotAllClose(first, other)
        self.assertGreaterEqual(float(tf.reduce_min(first)), 0.0)
        self.assertLessEqual(float(tf.reduce_max(first)), 1.0)

    @parameterized.parameters(0, 1, 2)
    def test_jpeg_path_decodes_only_the_same_crop(self, index):
        pixels = tf.cast(random_image(96, 80) * 255, tf.uint8)
        contents = tf.io.encode_jpeg(pixels, quality=95)
        decoded = tf.image.convert_image_dtype(
            tf.io.decode_jpeg(contents, channels=3), tf.float32
        )
        seed = tf.constant([index, 11])
        from_jpeg = preprocessing.imagenet_augment_jpeg(contents, seed, 32)
        from_image = preprocessing.imagenet_augment(decoded, seed, 32)
        other = preprocessing.imagenet_augment(
            decoded, tf.constant([index + 10, 11]), 32
        )
        # Decoding a crop differs from cropping a decoded image only by
        # JPEG's chroma upsampling at the crop's border (measured: mean 3e-4
        # to 1.2e-3, max 0.14); another crop differs by a mean of 0.14 to
        # 0.27.
        same = np.abs(from_jpeg - from_image)
        self.assertLess(float(np.mean(same)), 0.005)
        self.assertGreater(float(np.mean(np.abs(other - from_image))), 0.05)

    def test_grayscale_colour_distortion(self):
        image = random_image(20, 20, channels=1)
        output = preprocessing.distort_colour(image, tf.constant([0, 1]))
        self.assertEqual(output.shape, (20, 20, 1))


class StylesTest(TestCase):
    def test_resize_style_has_no_augmentation(self):
        image = random_image(8, 8, 1)
        train = preprocessing.train_transform("resize", 16)
        evaluate = preprocessing.eval_transform("resize", 16)
        self.assertAllEqual(train(image, tf.constant([0, 0])), evaluate(image))
        self.assertAllEqual(train(image, tf.constant([5, 9])), evaluate(image))

    def test_unknown_style(self):
        with self.assertRaisesRegex(ValueError, "preprocessing='mixup'"):
            preprocessing.train_transform("mixup", 32)
