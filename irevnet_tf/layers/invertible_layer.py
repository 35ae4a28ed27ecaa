"""The call/inverse contract shared by every invertible layer."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="irevnet_tf")
class InvertibleLayer(keras.layers.Layer):
    """Base class of layers with an exact inverse.

    Subclasses implement `_forward(inputs, training, **kwargs)` and
    `_inverse(outputs, training, **kwargs)`. Both directions go through
    `__call__`, so the inverse builds the layer, casts inputs, traces and
    exports exactly like the forward pass.

    Inversion is exact only in inference mode: in training mode BatchNorm
    normalises with batch statistics, which the inverse cannot know, and a
    second training-mode call would update the moving statistics again. This
    is why `inverse` defaults to `training=False`.

    Inputs are converted to the layer's variable dtype, not to its compute
    dtype: under a mixed policy the invertible stream stays in float32 (see
    `irevnet_tf.layers.stream_precision`).

    Call arguments:
        inputs: the layer's input (a tensor, or a tuple of two tensors for
            layers that act on channel halves).
        inverse: bool. If True, apply the inverse map instead.
        training: bool or None. Passed to sublayers such as BatchNorm.
        **kwargs: further arguments of a subclass's `_forward`/`_inverse`.
    """

    @property
    def input_dtype(self):
        # Keras casts a layer's inputs to this dtype in `__call__`; the
        # compute dtype (float16 under a mixed policy) would lose the bits
        # that the inverse must give back.
        return self.variable_dtype

    def call(self, inputs, inverse=False, training=None, **kwargs):
        if inverse:
            return self._inverse(inputs, training=training, **kwargs)
        return self._forward(inputs, training=training, **kwargs)

    def inverse(self, outputs, training=False, **kwargs):
        """Maps outputs of this layer back to its inputs."""
        return self(outputs, inverse=True, training=training, **kwargs)

    def _forward(self, inputs, training=None):
        raise NotImplementedError(
            f"{type(self).__name__} must implement `_forward`."
        )

    def _inverse(self, outputs, training=None):
        raise NotImplementedError(
            f"{type(self).__name__} must implement `_inverse`."
        )

    def recompute(self, inputs, training=True, **kwargs):
        """The forward pass once more, for a backward pass that stored none.

        Same outputs as the first call with these arguments; training-mode
        state (BatchNorm moving statistics) is left as that call left it.
        Layers with such state override this.
        """
        return self(inputs, training=training, **kwargs)

    def reconstruct_and_backprop(
        self, outputs, output_gradients, training=True, **kwargs
    ):
        """Recovers the inputs from the outputs and backpropagates.

        The step of memory-saving training: nothing of the forward pass was
        stored, so the inputs are rebuilt with the exact inverse and the
        vector-Jacobian product is taken on a recomputation.

        This generic version inverts, then differentiates `recompute`.

        Args:
            outputs: the layer's outputs (tensor or pair).
            output_gradients: gradients of the loss with respect to them.
            training: the mode of the forward pass.
            **kwargs: the further call arguments of the forward pass.

        Returns:
            `(inputs, input_gradients, variable_gradients)`, the last aligned
            with `self.trainable_variables`.
        """
        inputs = self.inverse(outputs, training=training, **kwargs)
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            recomputed = self.recompute(inputs, training=training, **kwargs)
        input_gradients, variable_gradients = tape.gradient(
            recomputed,
            (inputs, variables),
            output_gradients=output_gradients,
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        return inputs, input_gradients, variable_gradients
