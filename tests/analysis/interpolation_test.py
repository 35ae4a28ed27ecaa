import os

import numpy as np

from irevnet_tf.analysis import DataSettings
from irevnet_tf.analysis import data as data_lib
from irevnet_tf.analysis import interpolation
from irevnet_tf.testing import digits_models
from irevnet_tf.testing.digit_files import prepared_digits_dir
from irevnet_tf.testing.test_case import TestCase


def trained_classifier():
    return digits_models.trained_classifier(prepared_digits_dir())


def digits_settings():
    return DataSettings("digits", data_dir=prepared_digits_dir())


def digits(count):
    images, labels, _ = data_lib.load_examples(
        trained_classifier(), digits_settings(), "test", count
    )
    return images, labels


class InterpolationPathTest(TestCase):
    def test_endpoints_are_the_two_images(self):
        (x0, x1), _ = digits(2)
        path = interpolation.interpolation_path(
            trained_classifier(), x0, x1, steps=5
        )
        self.assertAllClose(path["t"], [0.0, 0.25, 0.5, 0.75, 1.0])
        self.assertEqual(path["features_path"].shape, (5, 16, 16, 1))
        self.assertAllClose(path["features_path"][0], x0, atol=1e-5)
        self.assertAllClose(path["features_path"][-1], x1, atol=1e-5)
        self.assertAllClose(path["pixel_path"][2], (x0 + x1) / 2)
        # In between, the images follow the features, not the pixels.
        self.assertGreater(
            np.abs(path["features_path"][2] - path["pixel_path"][2]).max(),
            0.05,
        )

    def test_path_is_a_straight_line_in_feature_space(self):
        # With a bijective Phi, Phi(x_t) is exactly the mixed features.
        model = digits_models.bijective_classifier()
        rng = np.random.default_rng(0)
        x0, x1 = rng.random((2, 16, 16, 1), "float32")
        path = interpolation.interpolation_path(model, x0, x1, steps=3)
        features = model.features(np.stack([x0, x1])).numpy()
        self.assertAllClose(
            model.features(path["features_path"]),
            [features[0], features.mean(0), features[1]],
            atol=1e-4,
        )

    def test_pairs_have_different_labels(self):
        labels = np.array([0, 0, 0, 1, 2])
        pairs = interpolation.choose_pairs(labels, 20, seed=0)
        self.assertLen(pairs, 20)
        for i, j in pairs:
            self.assertNotEqual(labels[i], labels[j])

    def test_steps_below_two(self):
        with self.assertRaisesRegex(ValueError, "steps=1"):
            interpolation.interpolation_path(
                digits_models.bijective_classifier(),
                np.zeros((16, 16, 1)),
                np.ones((16, 16, 1)),
                steps=1,
            )


class RunInterpolationTest(TestCase):
    def test_writes_strips_of_the_chosen_pairs(self):
        output_dir = self.get_temp_dir()
        record = interpolation.run_interpolation(
            trained_classifier(),
            digits_settings(),
            output_dir,
            pairs=[(0, 1), (2, 5)],
            steps=4,
        )
        images, labels = digits(6)
        self.assertEqual(
            [p["indices"] for p in record["pairs"]], [[0, 1], [2, 5]]
        )
        self.assertEqual(
            record["pairs"][1]["labels"], [int(labels[2]), int(labels[5])]
        )
        for pair in record["pairs"]:
            self.assertLess(max(pair["endpoint_errors"]), 1e-5)
            self.assertLen(pair["predictions"], 4)
            self.assertAllClose(
                pair["distance_from_pixel_path"][0], 0.0, atol=1e-4
            )
        strips = np.load(os.path.join(output_dir, "interpolation.npz"))
        self.assertEqual(strips["features_paths"].shape, (2, 4, 16, 16, 1))
        self.assertAllClose(
            strips["features_paths"][1, 0], images[2], atol=1e-5
        )
        self.assertAllClose(
            strips["features_paths"][1, -1], images[5], atol=1e-5
        )
        self.assertTrue(
            os.path.isfile(os.path.join(output_dir, "interpolation.png"))
        )

    def test_index_beyond_the_split(self):
        with self.assertRaisesRegex(ValueError, "has 360 images"):
            interpolation.run_interpolation(
                trained_classifier(),
                digits_settings(),
                self.get_temp_dir(),
                pairs=[(0, 360)],
            )
