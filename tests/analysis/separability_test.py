import json
import os

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from irevnet_tf.analysis import DataSettings
from irevnet_tf.analysis import data as data_lib
from irevnet_tf.analysis import features as features_lib
from irevnet_tf.analysis import separability
from irevnet_tf.testing import digits_models
from irevnet_tf.testing.digit_files import prepared_digits_dir
from irevnet_tf.testing.test_case import TestCase


def trained_classifier():
    return digits_models.trained_classifier(prepared_digits_dir())


def digits_settings():
    return DataSettings("digits", data_dir=prepared_digits_dir())


class FeaturesTest(TestCase):
    def test_batched_averages_equal_whole_block_outputs(self):
        model = trained_classifier()
        dataset, _ = data_lib.load_split(model, digits_settings(), "test", 20)
        # 20 images in batches of 7: two full batches and a partial one.
        result = features_lib.extract_features(
            model, dataset, [1, 4, 6], batch_size=7, pixels=True
        )
        images, labels, _ = data_lib.load_examples(
            model, digits_settings(), "test", 20
        )
        outputs = model.backbone.block_outputs(tf.constant(images))
        for depth in (1, 4, 6):
            self.assertAllClose(
                result.by_depth[depth],
                np.mean(outputs[depth - 1], axis=(1, 2)),
                atol=1e-5,
            )
        self.assertAllEqual(result.labels, labels)
        self.assertAllEqual(result.pixels, images.reshape(20, -1))

    def test_depths_default_sorted_and_unique(self):
        self.assertEqual(features_lib.check_depths(None, 3), [1, 2, 3])
        self.assertEqual(features_lib.check_depths([3, 1, 1], 3), [1, 3])

    @parameterized.named_parameters(
        ("zero", [0]), ("beyond_the_last", [1, 4]), ("none", [])
    )
    def test_depths_beyond_the_model(self, depths):
        with self.assertRaisesRegex(ValueError, "from 1 to 3"):
            features_lib.check_depths(depths, 3)


class SeparabilityTest(TestCase):
    def test_trained_model_separates_digits_with_depth(self):
        output_dir = self.get_temp_dir()
        record = separability.run_separability(
            trained_classifier(),
            digits_settings(),
            output_dir,
            max_train_examples=600,
            max_test_examples=200,
            batch_size=128,
            pixel_baseline=False,
        )
        self.assertEqual(record["depths"], [1, 2, 3, 4, 5, 6])
        self.assertEqual(record["channels"], [16, 16, 64, 64, 256, 256])
        self.assertEqual(record["train_examples"], 600)
        self.assertEqual(record["test_examples"], 200)
        self.assertAllClose(record["chance_accuracy"], 0.1)
        # Chance is 10%: the last block's averages separate the classes.
        self.assertGreater(record["svm_accuracy"][-1], 0.8)
        self.assertGreater(record["nearest_neighbour_accuracy"][-1], 0.8)
        # ... much better than the first block's (about 30%).
        self.assertGreater(
            record["svm_accuracy"][-1], record["svm_accuracy"][0] + 0.3
        )
        self.assertIsNone(record["pixel_baseline"])
        with open(os.path.join(output_dir, "separability.json")) as file:
            self.assertEqual(
                json.load(file)["svm_accuracy"], record["svm_accuracy"]
            )
        self.assertTrue(
            os.path.isfile(os.path.join(output_dir, "separability.png"))
        )

    def test_chosen_depths_and_pixel_baseline(self):
        record = separability.run_separability(
            trained_classifier(),
            digits_settings(),
            self.get_temp_dir(),
            max_train_examples=100,
            max_test_examples=50,
            depths=[5, 2],
        )
        self.assertEqual(record["depths"], [2, 5])
        self.assertEqual(record["channels"], [16, 256])
        self.assertLen(record["svm_accuracy"], 2)
        # On by default for 256 pixel values; 1-NN on raw digits works.
        baseline = record["pixel_baseline"]
        self.assertEqual(baseline["dimensions"], 256)
        self.assertGreater(baseline["nearest_neighbour_accuracy"], 0.5)

    def test_depth_beyond_the_model(self):
        with self.assertRaisesRegex(ValueError, "depths=\\[7\\]"):
            separability.run_separability(
                trained_classifier(),
                digits_settings(),
                self.get_temp_dir(),
                depths=[7],
            )
