import os

import numpy as np
import tensorflow as tf

from irevnet_tf.analysis import DataSettings
from irevnet_tf.analysis import data as data_lib
from irevnet_tf.analysis import jacobian
from irevnet_tf.analysis import spectrum
from irevnet_tf.testing import digits_models
from irevnet_tf.testing.digit_files import prepared_digits_dir
from irevnet_tf.testing.test_case import TestCase


def trained_classifier():
    return digits_models.trained_classifier(prepared_digits_dir())


def digits_settings():
    return DataSettings("digits", data_dir=prepared_digits_dir())


def digit(index=0):
    images, _, _ = data_lib.load_examples(
        trained_classifier(), digits_settings(), "test", index + 1
    )
    return images[index]


def autodiff_jacobian(model, image):
    """The Jacobian by `GradientTape.jacobian`, as a D_out x D_in matrix."""
    x = tf.constant(image[None])
    with tf.GradientTape() as tape:
        tape.watch(x)
        features = model.backbone(x, training=False)
    jacobian = tape.jacobian(features, x).numpy()
    return jacobian.reshape(features.shape.num_elements(), image.size)


class JacobianOperatorTest(TestCase):
    def test_products_are_adjoint(self):
        operator = jacobian.JacobianOperator(
            trained_classifier().backbone, digit(), batch_size=3
        )
        self.assertEqual(operator.shape, (1024, 256))
        rng = np.random.default_rng(0)
        v, u = rng.standard_normal((256, 5)), rng.standard_normal((1024, 5))
        # <J v, u> == <v, J^T u>, column by column.
        self.assertAllClose(
            np.sum((operator @ v) * u, axis=0),
            np.sum(v * (operator.T @ u), axis=0),
            rtol=1e-4,
        )

    def test_dense_equals_gradient_tape_jacobian(self):
        # GradientTape.jacobian (reverse mode, vectorised) is independent
        # of the operator's forward-mode columns.
        model = digits_models.bijective_classifier()
        image = np.random.default_rng(0).random((16, 16, 1), "float32")
        dense = jacobian.JacobianOperator(model.backbone, image, 128).dense()
        expected = autodiff_jacobian(model, image)
        self.assertAllClose(dense, expected, atol=1e-5 * np.abs(expected).max())
        result = spectrum.jacobian_spectrum(model, image, "exact")
        self.assertAllClose(
            result["singular_values"],
            np.linalg.svd(expected.astype(np.float64), compute_uv=False),
            atol=1e-5 * result["singular_values"][0],
        )


class SpectrumTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.image = digit()
        cls.exact = spectrum.jacobian_spectrum(
            trained_classifier(), cls.image, "exact", batch_size=128
        )
        cls.expected = cls.exact["singular_values"]

    def test_exact_values_and_energy(self):
        exact = self.exact
        self.assertEqual(exact["method"], "exact")
        self.assertEqual(
            (exact["output_dimensions"], exact["input_dimensions"]),
            (1024, 256),
        )
        self.assertLen(exact["singular_values"], 256)
        self.assertTrue(np.all(np.diff(exact["singular_values"]) <= 0))
        self.assertGreater(exact["singular_values"][-1], 0.0)
        self.assertAllClose(exact["normalized"][0], 1.0)
        energy = exact["energy_fraction"]
        self.assertTrue(np.all((energy > 0) & (energy <= 1 + 1e-12)))
        self.assertTrue(np.all(np.diff(energy) >= 0))
        self.assertAllClose(energy[-1], 1.0)
        self.assertAllClose(
            energy[0], self.expected[0] ** 2 / np.sum(self.expected**2)
        )

    def test_matrix_free_top_values_match_exact(self):
        result = spectrum.jacobian_spectrum(
            trained_classifier(),
            self.image,
            "randomized",
            top_k=10,
            tolerance=1e-6,
            max_iterations=50,
            batch_size=128,
        )
        self.assertEqual(result["method"], "randomized")
        self.assertLess(result["iterations"], 50)
        self.assertLessEqual(result["relative_change"], 1e-6)
        self.assertLen(result["singular_values"], 10)
        error = np.abs(result["singular_values"] - self.expected[:10])
        self.assertLess(np.max(error / self.expected[:10]), 1e-4)
        # The Gaussian-probe estimate of ||J||_F^2 is unbiased: within
        # four standard errors of the truth.
        total = np.sum(self.expected**2)
        self.assertLess(
            abs(result["total_energy"] - total),
            4 * result["total_energy_stderr"],
        )

    def test_method_by_input_size(self):
        self.assertEqual(spectrum.choose_method("auto", 3072), "exact")
        self.assertEqual(
            spectrum.choose_method("auto", 224 * 224 * 3), "randomized"
        )
        self.assertEqual(spectrum.choose_method("exact", 10**6), "exact")
        with self.assertRaisesRegex(ValueError, "method='lanczos'"):
            spectrum.choose_method("lanczos", 10)

    def test_top_k_beyond_the_rank(self):
        operator = jacobian.JacobianOperator(
            digits_models.bijective_classifier().backbone, np.zeros((16, 16, 1))
        )
        with self.assertRaisesRegex(ValueError, "top_k=257"):
            jacobian.randomized_singular_values(operator, 257)

    def test_run_on_noise_without_a_dataset(self):
        output_dir = self.get_temp_dir()
        record = spectrum.run_spectrum(
            digits_models.bijective_classifier(),
            output_dir,
            num_images=2,
            method="randomized",
            top_k=5,
            energy_k=(1, 5, 10),
        )
        self.assertIn("noise", record)
        self.assertLen(record["images"], 2)
        for image in record["images"]:
            self.assertLen(image["singular_values"], 5)
            # k=10 is beyond the 5 values found.
            self.assertEqual(sorted(image["energy_fraction_at"]), [1, 5])
        self.assertTrue(
            os.path.isfile(os.path.join(output_dir, "spectrum.png"))
        )
