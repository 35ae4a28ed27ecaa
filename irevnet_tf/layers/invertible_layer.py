"""The call/inverse contract shared by every invertible layer."""

import keras


@keras.saving.register_keras_serializable(package="irevnet_tf")
class InvertibleLayer(keras.layers.Layer):
    """Base class of layers with an exact inverse.

    Subclasses implement `_forward(inputs, training)` and
    `_inverse(outputs, training)`. Both directions go through `__call__`, so
    the inverse builds the layer, casts inputs, traces and exports exactly like
    the forward pass.

    Inversion is exact only in inference mode: in training mode BatchNorm
    normalises with batch statistics, which the inverse cannot know, and a
    second training-mode call would update the moving statistics again. This
    is why `inverse` defaults to `training=False`.

    Call arguments:
        inputs: the layer's input (a tensor, or a tuple of two tensors for
            layers that act on channel halves).
        inverse: bool. If True, apply the inverse map instead.
        training: bool or None. Passed to sublayers such as BatchNorm.
    """

    def call(self, inputs, inverse=False, training=None):
        if inverse:
            return self._inverse(inputs, training=training)
        return self._forward(inputs, training=training)

    def inverse(self, outputs, training=False):
        """Maps outputs of this layer back to its inputs."""
        return self(outputs, inverse=True, training=training)

    def _forward(self, inputs, training=None):
        raise NotImplementedError(
            f"{type(self).__name__} must implement `_forward`."
        )

    def _inverse(self, outputs, training=None):
        raise NotImplementedError(
            f"{type(self).__name__} must implement `_inverse`."
        )
