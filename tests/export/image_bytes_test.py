"""The forward SavedModel's `image_bytes` signature: encoded images in."""

import io
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from PIL import Image

from export import export_lib
from irevnet_tf.datasets import preprocessing
from irevnet_tf.testing.small_classifier import small_classifier
from irevnet_tf.testing.test_case import TestCase
from irevnet_tf.testing.test_case import relative_error

# The signature runs the same decoding, resizing and model ops as the
# reference computed here; measured differences are 0 to 1e-7.
RTOL = 1e-5
_STATISTICS = dict(input_mean=[0.5, 0.4, 0.3], input_std=[0.2, 0.25, 0.3])


def encode(image, format):
    """`image` (uint8 `(H, W, C)`) as the bytes of a `format` file."""
    if format == "jpeg":
        return tf.io.encode_jpeg(image).numpy()
    if format == "png":
        return tf.io.encode_png(image).numpy()
    buffer = io.BytesIO()
    Image.fromarray(np.squeeze(image)).save(buffer, format=format.upper())
    return buffer.getvalue()


class ImageBytesTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.model = small_classifier(**_STATISTICS)
        cls.signatures = {}
        for style in ("resize", "imagenet"):
            path = os.path.join(cls.tmp, style)
            export_lib.export_forward(cls.model, path, preprocessing=style)
            cls.signatures[style] = tf.saved_model.load(path).signatures
        # Not square: resizing and centre cropping differ.
        cls.image = np.random.default_rng(0).integers(
            0, 256, (20, 28, 3), dtype=np.uint8
        )

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def expected_logits(self, contents, style):
        image = tf.io.decode_image(
            contents, expand_animations=False, dtype=tf.float32
        )
        pixels = preprocessing.eval_transform(style, 16)(image)[None]
        # The model takes pixels: the signature's own input, and the model.
        served = self.signatures[style]["serving_default"](images=pixels)
        self.assertAllClose(
            served["logits"], self.model(pixels), rtol=RTOL, atol=1e-6
        )
        return served["logits"]

    @parameterized.product(
        format=("png", "jpeg", "gif", "bmp"), style=("resize", "imagenet")
    )
    def test_formats_and_evaluation_transforms(self, format, style):
        contents = encode(self.image, format)
        outputs = self.signatures[style]["image_bytes"](
            image_bytes=tf.constant([contents, contents])
        )
        expected = self.expected_logits(contents, style)
        for logits in outputs["logits"]:
            self.assertLessEqual(relative_error(logits, expected[0]), RTOL)
        self.assertEqual(outputs["features"].shape, (2, 8, 8, 64))
        self.assertAllClose(
            outputs["probabilities"], tf.nn.softmax(outputs["logits"])
        )

    def test_centre_crop_is_not_a_resize(self):
        contents = tf.constant([encode(self.image, "png")])
        resized = self.signatures["resize"]["image_bytes"](image_bytes=contents)
        cropped = self.signatures["imagenet"]["image_bytes"](
            image_bytes=contents
        )
        self.assertGreater(
            relative_error(resized["logits"], cropped["logits"]), 1e-3
        )

    def test_grey_and_alpha_images(self):
        grey = self.image[..., :1]
        rgba = np.concatenate([self.image, grey], axis=-1)
        signature = self.signatures["resize"]["image_bytes"]
        outputs = signature(
            image_bytes=tf.constant([encode(grey, "png"), encode(rgba, "png")])
        )
        # Grey is repeated to three channels; alpha is dropped.
        expected_grey = self.expected_logits(
            encode(np.repeat(grey, 3, axis=-1), "png"), "resize"
        )
        expected_rgba = self.expected_logits(
            encode(self.image, "png"), "resize"
        )
        self.assertLessEqual(
            relative_error(outputs["logits"][0], expected_grey[0]), RTOL
        )
        self.assertLessEqual(
            relative_error(outputs["logits"][1], expected_rgba[0]), RTOL
        )

    def test_empty_batch(self):
        outputs = self.signatures["resize"]["image_bytes"](
            image_bytes=tf.constant([], tf.string)
        )
        self.assertEqual(outputs["logits"].shape, (0, 10))
        self.assertEqual(outputs["features"].shape, (0, 8, 8, 64))

    @parameterized.named_parameters(
        ("text", [b"hello", b"\x89PNG"], "example 0 is not a PNG"),
        ("empty_string", [b""], "example 0 is not a PNG, JPEG, GIF or BMP"),
    )
    def test_undecodable_bytes_name_the_example(self, contents, message):
        png = encode(self.image, "png")
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, message):
            self.signatures["resize"]["image_bytes"](
                image_bytes=tf.constant([*contents, png])
            )

    @parameterized.product(format=("png", "jpeg", "gif", "bmp"))
    def test_truncated_image_names_the_example(self, format):
        contents = encode(self.image, format)
        truncated = contents[: len(contents) // 2]
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError,
            "irevnet_forward: `image_bytes` example 1 cannot be decoded: a "
            "truncated or corrupt image",
        ):
            self.signatures["resize"]["image_bytes"](
                image_bytes=tf.constant([contents, truncated, truncated])
            )

    def test_corrupt_image_data_names_the_example(self):
        png = encode(self.image, "png")
        # Bytes flipped inside the image data: the chunk's CRC fails.
        middle = len(png) // 2
        corrupt = png[:middle] + bytes(b ^ 0xFF for b in png[middle:][:8])
        corrupt += png[middle + 8 :]
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError,
            "example 2 cannot be decoded: a truncated or corrupt image",
        ):
            self.signatures["resize"]["image_bytes"](
                image_bytes=tf.constant([png, png, corrupt])
            )

    def test_a_bad_format_is_named_before_a_truncated_image(self):
        png = encode(self.image, "png")
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError,
            "example 1 is not a PNG, JPEG, GIF or BMP image",
        ):
            self.signatures["resize"]["image_bytes"](
                image_bytes=tf.constant([png[:40], b"GIF", png])
            )

    def test_models_of_any_size_have_no_image_bytes_signature(self):
        model = small_classifier(image_shape=(None, None, 3))
        path = os.path.join(self.tmp, "any_size")
        export_lib.export_forward(model, path)
        self.assertEqual(
            list(tf.saved_model.load(path).signatures), ["serving_default"]
        )
