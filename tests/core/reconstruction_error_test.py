"""The relative reconstruction error."""

import numpy as np
import pytest

from irevnet_tf.reconstruction_error import relative_error
from irevnet_tf.reconstruction_error import relative_errors


def test_per_example_errors_in_float64():
    x64 = np.ones((2, 4, 4, 1), np.float64)
    y = x64.copy()
    # A difference float32 would round away (its epsilon is 1.2e-7).
    y[1] += 1e-9
    errors = relative_errors(x64, y)
    assert errors.dtype == np.float64
    np.testing.assert_allclose(errors, [0.0, 1e-9], rtol=1e-6, atol=0)


def test_zero_image_is_measured_absolutely():
    x = np.zeros((1, 3))
    y = np.array([[3.0, 4.0, 0.0]])
    np.testing.assert_allclose(relative_errors(x, y), [5.0])
    # Against an all-zero expectation, the absolute error.
    assert relative_error(y, x) == pytest.approx(5.0)
    assert relative_error(x, x) == 0.0


def test_non_finite_reconstructions_give_non_finite_errors():
    errors = relative_errors(np.ones((2, 2)), [[np.nan, 1], [1, 1]])
    assert np.isnan(errors[0]) and errors[1] == 0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        relative_errors(np.ones((2, 3)), np.ones((2, 4)))


def test_structure_error():
    a = [np.array([3.0, 0.0]), np.array([0.0])]
    b = [np.array([3.0, 4.0]), np.array([0.0])]
    assert relative_error(a, b) == pytest.approx(4.0 / 5.0)
