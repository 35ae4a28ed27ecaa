"""Test base for invertible layers, built on public TensorFlow/Keras APIs."""

import inspect
import os

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from irevnet_tf.reconstruction_error import relative_error


class TestCase(tf.test.TestCase, parameterized.TestCase):
    """`tf.test.TestCase` with checks for invertible Keras layers."""

    # tf.test.TestCase's deprecated `test_session` is not a test; hiding it
    # keeps pytest from reporting it as skipped.
    test_session = None

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(1234)

    def assert_invertible(
        self,
        layer,
        inputs,
        rtol: float,
        check_right_inverse: bool = True,
    ) -> None:
        """Checks `inverse(call(x)) == x` and `call(inverse(y)) == y`.

        Both in inference mode, eagerly and compiled with XLA, with every
        value finite. `rtol` bounds the relative error of the whole
        structure. Set `check_right_inverse=False` for injective layers,
        whose `call(inverse(y))` only holds on the image of `call`.
        """
        compiled_forward = tf.function(
            lambda x: layer(x, training=False), jit_compile=True
        )
        compiled_inverse = tf.function(
            lambda y: layer.inverse(y, training=False), jit_compile=True
        )
        for regime, forward, inverse in (
            ("eager", lambda x: layer(x, training=False), layer.inverse),
            ("xla", compiled_forward, compiled_inverse),
        ):
            with self.subTest(regime=regime):
                outputs = forward(inputs)
                restored = inverse(outputs)
                for tensor in tf.nest.flatten((outputs, restored)):
                    self.assertTrue(
                        np.all(np.isfinite(tensor)), f"non-finite in {regime}"
                    )
                error = relative_error(restored, inputs)
                self.assertLessEqual(
                    error, rtol, f"inverse(call(x)) != x ({regime})"
                )
                if check_right_inverse:
                    error = relative_error(forward(restored), outputs)
                    self.assertLessEqual(
                        error, rtol, f"call(inverse(y)) != y ({regime})"
                    )

    def assert_config_complete(self, layer) -> None:
        """Every `__init__` argument of `layer` appears in `get_config()`."""
        config = layer.get_config()
        parameters = inspect.signature(type(layer).__init__).parameters
        for name, parameter in parameters.items():
            if name == "self" or parameter.kind in (
                parameter.VAR_KEYWORD,
                parameter.VAR_POSITIONAL,
            ):
                continue
            self.assertIn(name, config, f"{name} missing from get_config()")

    def run_serialization_test(self, layer, inputs) -> None:
        """Config and `.keras` file round trips compute the same function.

        `layer` is a layer or a subclassed model; `inputs` a tensor or a pair.
        """
        expected = layer(inputs, training=False)
        clone = type(layer).from_config(layer.get_config())
        self.assertEqual(clone.get_config(), layer.get_config())
        if isinstance(layer, keras.Model):
            model = layer
        else:
            symbolic = tf.nest.map_structure(
                lambda t: keras.Input(t.shape[1:], dtype=t.dtype),
                list(inputs) if isinstance(inputs, tuple) else inputs,
            )
            model = keras.Model(symbolic, layer(symbolic))
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        if not isinstance(layer, keras.Model):
            self.assertIn(type(layer), [type(x) for x in loaded.layers])
            inputs = list(inputs) if isinstance(inputs, tuple) else inputs
        actual = loaded(inputs, training=False)
        for a, e in zip(tf.nest.flatten(actual), tf.nest.flatten(expected)):
            self.assertAllEqual(a, e)


def randomize_batch_norm(model, seed: int = 0) -> None:
    """Gives every BatchNorm of `model` random statistics, scale and offset.

    Fresh BatchNorms are the identity in inference mode (mean 0, variance 1),
    which would make invertibility tests easier than real, trained models.
    """
    rng = np.random.default_rng(seed)
    draws = {
        "moving_mean": lambda shape: rng.normal(0.0, 0.5, shape),
        "moving_variance": lambda shape: rng.uniform(0.5, 2.0, shape),
        "gamma": lambda shape: rng.uniform(0.5, 1.5, shape),
        "beta": lambda shape: rng.normal(0.0, 0.5, shape),
    }
    for variable in model.variables:
        draw = draws.get(variable.name)
        if draw is not None:
            variable.assign(draw(variable.shape).astype(variable.dtype))
