import os
import shutil
import tempfile

import numpy as np
from absl.testing import parameterized
from matplotlib import image as mpl_image

from irevnet_tf import reconstruction_error
from irevnet_tf.analysis import DataSettings
from irevnet_tf.analysis import reconstruction
from irevnet_tf.testing import digits_models
from irevnet_tf.testing.digit_files import prepared_digits_dir
from irevnet_tf.testing.test_case import TestCase

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

    def test_errors_see_a_wrong_inverse(self):
        # The measure itself must be able to fail: a model whose inverse
        # misses (training-mode BatchNorm statistics) is reported as such.
        model = digits_models.bijective_classifier()
        images = np.random.default_rng(0).random((8, 16, 16, 1), "float32")
        features = model.features(images, training=True)
        restored = model.inverse(features, training=False)
        errors = reconstruction_error.relative_errors(images, restored)
        self.assertGreater(errors.mean(), 1e-2)

    def test_nothing_to_measure(self):
        with self.assertRaisesRegex(ValueError, "Nothing to measure"):
            reconstruction.run_reconstruction(
                digits_models.bijective_classifier(),
                self.get_temp_dir(),
                num_noise=0,
            )


class TrainedModelTest(TestCase):
    """One run of the analysis on noise and digits, checked per source."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        data_dir = prepared_digits_dir()
        cls.output_dir = tempfile.mkdtemp()
        cls.addClassCleanup(shutil.rmtree, cls.output_dir, ignore_errors=True)
        cls.record = reconstruction.run_reconstruction(
            digits_models.trained_classifier(data_dir),
            cls.output_dir,
            model_name="digits-test",
            settings=DataSettings("digits", data_dir=data_dir),
            num_examples=100,
            num_noise=64,
            batch_size=50,
        )

    @parameterized.named_parameters(
        ("noise", "noise", 64), ("data", "data", 100)
    )
    def test_errors(self, source, examples):
        errors = self.record[source]["errors"]
        self.assertEqual(errors["examples"], examples)
        self.assertGreater(errors["mean"], 0.0)
        self.assertLess(errors["mean"], MAX_FLOAT32_ERROR)
        self.assertLessEqual(errors["mean"], errors["max"])

    def test_record_and_figure(self):
        self.assertEqual(self.record["data"]["split"], "test")
        self.assertEqual(self.record["noise"]["image_shape"], [16, 16, 1])
        figure = mpl_image.imread(
            os.path.join(self.output_dir, "reconstruction.png")
        )
        self.assertGreater(min(figure.shape[:2]), 400)
        self.assertTrue(
            os.path.isfile(os.path.join(self.output_dir, "reconstruction.json"))
        )
