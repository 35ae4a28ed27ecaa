import os

import numpy as np

from irevnet_tf.analysis import DataSettings
from irevnet_tf.analysis import data as data_lib
from irevnet_tf.analysis import pca
from irevnet_tf.testing import digits_models
from irevnet_tf.testing.digit_files import prepared_digits_dir
from irevnet_tf.testing.test_case import TestCase


def trained_classifier():
    return digits_models.trained_classifier(prepared_digits_dir())


def digits_settings():
    return DataSettings("digits", data_dir=prepared_digits_dir())


class PcaTest(TestCase):
    def test_default_dimensions(self):
        self.assertEqual(
            pca.default_dimensions(256), [1, 2, 4, 8, 16, 32, 64, 128, 256]
        )
        self.assertEqual(
            pca.default_dimensions(100), [1, 2, 4, 8, 16, 32, 64, 100]
        )
        self.assertEqual(pca.default_dimensions(1), [1])

    def test_accuracy_against_components(self):
        output_dir = self.get_temp_dir()
        record = pca.run_pca(
            trained_classifier(),
            digits_settings(),
            output_dir,
            max_train_examples=600,
            max_test_examples=200,
            dimensions=[256, 1, 16, 4],
            batch_size=128,
        )
        self.assertEqual(record["feature_dimensions"], 256)
        self.assertEqual(record["dimensions"], [1, 4, 16, 256])
        svm = np.array(record["svm_accuracy"])
        nearest = np.array(record["nearest_neighbour_accuracy"])
        # All 256 components are a rotation of the standardised features:
        # 1-NN distances are unchanged, and so is the SVM's optimum.
        full = record["full"]
        self.assertAllClose(nearest[-1], full["nearest_neighbour_accuracy"])
        self.assertAllClose(svm[-1], full["svm_accuracy"], atol=0.02)
        # More components help: one is far from enough, 16 nearly all.
        self.assertGreater(nearest[-1], 0.8)
        self.assertGreater(nearest[-1], nearest[0] + 0.2)
        self.assertGreater(svm[-1], svm[0] + 0.2)
        self.assertGreater(nearest[2], nearest[-1] - 0.1)
        variance = np.array(record["explained_variance"])
        self.assertTrue(np.all(np.diff(variance) >= 0), variance)
        self.assertAllClose(variance[-1], 1.0)
        self.assertTrue(os.path.isfile(os.path.join(output_dir, "pca.png")))

    def test_dimension_beyond_the_features(self):
        model = trained_classifier()
        settings = digits_settings()
        train, _ = data_lib.load_split(model, settings, "train", 50)
        test, _ = data_lib.load_split(model, settings, "test", 20)
        # 50 training examples allow at most 50 components.
        with self.assertRaisesRegex(ValueError, "= 50. Received: dimensions"):
            pca.pca_accuracy(model, train, test, dimensions=[2, 51])
