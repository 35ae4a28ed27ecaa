import os

import numpy as np
from matplotlib import image as mpl_image

from irevnet_tf import reconstruction_error
from irevnet_tf.analysis import reconstruction
from irevnet_tf.testing.test_case import TestCase
from tests.analysis import common

# The paper's float32 errors are 5e-6 (noise) and 3e-6 (ImageNet); this
# small model measures about 2e-7.
MAX_FLOAT32_ERROR = 1e-5


class ReconstructionTest(TestCase):
    def test_relative_errors_per_sample(self):
        images = np.array([[3.0, 4.0], [1.0, 0.0]])
        restored = np.array([[3.0, 4.5], [1.0, 0.0]])
        self.assertAllClose(
            reconstruction_error.relative_errors(images, restored), [0.1, 0.0]
        )

    def test_trained_model_on_noise_and_digits(self):
        output_dir = self.get_temp_dir()
        record = reconstruction.run_reconstruction(
            common.trained_classifier(),
            output_dir,
            model_name="digits-test",
            settings=common.digits_settings(),
            num_examples=100,
            num_noise=64,
            batch_size=50,
        )
        for source, examples in (("noise", 64), ("data", 100)):
            with self.subTest(source=source):
                errors = record[source]["errors"]
                self.assertEqual(errors["examples"], examples)
                self.assertGreater(errors["mean"], 0.0)
                self.assertLess(errors["mean"], MAX_FLOAT32_ERROR)
                self.assertLessEqual(errors["mean"], errors["max"])
        self.assertEqual(record["data"]["split"], "test")
        self.assertEqual(record["noise"]["image_shape"], [16, 16, 1])
        figure = mpl_image.imread(
            os.path.join(output_dir, "reconstruction.png")
        )
        self.assertGreater(min(figure.shape[:2]), 400)
        self.assertTrue(
            os.path.isfile(os.path.join(output_dir, "reconstruction.json"))
        )

    def test_errors_see_a_wrong_inverse(self):
        # The measure itself must be able to fail: a model whose inverse
        # misses (training-mode BatchNorm statistics) is reported as such.
        model = common.bijective_classifier()
        images = np.random.default_rng(0).random((8, 16, 16, 1), "float32")
        features = model.features(images, training=True)
        restored = model.inverse(features, training=False)
        errors = reconstruction_error.relative_errors(images, restored)
        self.assertGreater(errors.mean(), 1e-2)

    def test_nothing_to_measure(self):
        with self.assertRaisesRegex(ValueError, "Nothing to measure"):
            reconstruction.run_reconstruction(
                common.bijective_classifier(), self.get_temp_dir(), num_noise=0
            )
