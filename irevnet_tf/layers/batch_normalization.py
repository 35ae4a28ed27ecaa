"""BatchNormalization whose training mode can leave the statistics alone."""

import keras


@keras.saving.register_keras_serializable(package="irevnet_tf")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras `BatchNormalization` with an `update_statistics` call argument.

    Memory-saving backprop recomputes every `F` in training mode during the
    backward pass. The recomputation must normalise with the batch statistics
    exactly as the forward pass did, but must not move the moving mean and
    variance a second time. `update_statistics=False` does that: training
    mode, batch statistics, no update. Everything else is Keras's layer.

    Args:
        **kwargs: the arguments of `keras.layers.BatchNormalization`.

    Call arguments:
        inputs, training, mask: as for `keras.layers.BatchNormalization`.
        update_statistics: bool. If False, training mode normalises with the
            batch statistics without updating the moving ones.
    """

    def call(self, inputs, training=None, mask=None, update_statistics=True):
        if update_statistics or not (training and self.trainable):
            return super().call(inputs, training=training, mask=mask)
        if mask is not None or self.renorm:
            raise ValueError(
                "`update_statistics=False` supports neither masks nor renorm."
            )
        # The arithmetic of keras.layers.BatchNormalization.call in training
        # mode, term for term, so that the recomputation is bit-identical.
        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        inputs = keras.ops.cast(inputs, compute_dtype)
        axes = [
            i
            for i in range(len(inputs.shape))
            if i != self.axis % len(inputs.shape)
        ]
        mean, variance = keras.ops.moments(
            inputs, axes=axes, synchronized=self.synchronized
        )
        outputs = keras.ops.batch_normalization(
            x=inputs,
            mean=mean,
            variance=variance,
            axis=self.axis,
            offset=None
            if self.beta is None
            else keras.ops.cast(self.beta, compute_dtype),
            scale=None
            if self.gamma is None
            else keras.ops.cast(self.gamma, compute_dtype),
            epsilon=self.epsilon,
        )
        return keras.ops.cast(outputs, self.compute_dtype)
