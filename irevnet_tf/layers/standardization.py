"""Per-channel standardisation as an invertible layer."""

import math

import keras

from irevnet_tf.layers.invertible_layer import InvertibleLayer


@keras.saving.register_keras_serializable(package="irevnet_tf")
class Standardization(InvertibleLayer):
    """Standardises each channel with fixed statistics, invertibly.

        y = (x - mean) / std        inverse: x = y * std + mean

    The first layer of a backbone trained on normalised images, so that the
    model itself takes and returns pixels: `model(pixels)`,
    `model.features(pixels)` and `model.inverse(features)` all speak pixel
    space, and so do the SavedModels exported from it. The statistics are
    constants of the layer's config (not weights): they are a fact about
    the training data, fixed before training starts.

    Unlike `keras.layers.Normalization`, which adapts its statistics and
    whose `invert=True` is a separate layer, this one computes both
    directions from the same numbers; the round trip is exact up to one
    rounding of each operation (relative error about 1e-7 in float32).

    Args:
        mean: float or list of floats, one per channel (a float applies to
            every channel). Default 0.
        std: positive float or list of positive floats, one per channel.
            Default 1. Together with the default mean: the identity.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor `(..., C)`, `C` matching the statistics' length
            (unless they are scalars).
        inverse: bool, undo the standardisation instead.
        training: unused.

    Example:

    >>> layer = Standardization(mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.2])
    >>> y = layer(np.full((1, 2, 2, 3), 0.5))   # channel 0: 0.0
    >>> x = layer.inverse(y)                     # back to 0.5 everywhere

    Reference:
        i-RevNet: https://openreview.net/pdf?id=HJsjkMb0Z. The authors'
        CIFAR-10 code normalises inputs this way before the network.
    """

    def __init__(self, mean=0.0, std=1.0, **kwargs):
        mean = _as_float_list("mean", mean)
        std = _as_float_list("std", std)
        if any(not s > 0 for s in std):
            raise ValueError(
                f"`std` must be positive and finite. Received: std={std}"
            )
        if len(mean) > 1 and len(std) > 1 and len(mean) != len(std):
            raise ValueError(
                "`mean` and `std` must have one value per channel each. "
                f"Received: mean={mean}, std={std}"
            )
        super().__init__(**kwargs)
        self.mean = mean
        self.std = std

    @property
    def is_identity(self):
        return all(m == 0 for m in self.mean) and all(s == 1 for s in self.std)

    def build(self, input_shape):
        channels = input_shape[-1]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if channels is not None and len(values) not in (1, channels):
                raise ValueError(
                    f"`{name}` has {len(values)} values for {channels} "
                    f"channels in {self.name}. Received: {name}={values}, "
                    f"input shape={tuple(input_shape)}"
                )
        self.built = True

    def _statistics(self, dtype):
        mean = keras.ops.convert_to_tensor(self.mean, dtype=dtype)
        std = keras.ops.convert_to_tensor(self.std, dtype=dtype)
        return mean, std

    def _forward(self, inputs, training=None):
        mean, std = self._statistics(inputs.dtype)
        return (inputs - mean) / std

    def _inverse(self, outputs, training=None):
        mean, std = self._statistics(outputs.dtype)
        return outputs * std + mean

    def get_config(self):
        config = super().get_config()
        config.update({"mean": list(self.mean), "std": list(self.std)})
        return config


def _as_float_list(name, value):
    values = value if isinstance(value, (list, tuple)) else [value]
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be a number or a list of numbers. "
            f"Received: {name}={value!r}"
        ) from None
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(
            f"`{name}` must hold finite numbers. Received: {name}={value!r}"
        )
    return values
