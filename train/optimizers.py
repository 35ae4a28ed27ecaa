"""SGD with coupled L2 weight decay, as the paper and the authors train."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="irevnet_train")
class SGDWithL2(keras.optimizers.SGD):
    """PyTorch's SGD: weight decay added to the gradient, then momentum.

        g <- g + l2 * w
        b <- momentum * b + g                      (b = g at the first step)
        w <- w - learning_rate * b                 (nesterov: g + momentum * b)

    This is `torch.optim.SGD(lr, momentum, weight_decay=l2)` (dampening 0),
    what the authors trained with: the gradient of the loss plus
    `l2 / 2 * sum(w ** 2)` over every trained variable (kernels, biases,
    BatchNorm scales and offsets). Keras's own `weight_decay` argument is
    decoupled instead (`w -= lr * wd * w` after the update, outside
    momentum) and is not used.

    Keras's `SGD` folds the learning rate into its momentum buffer
    (`v <- momentum * v - learning_rate * g; w <- w + v`). At a constant
    learning rate the two are the same; after a learning-rate drop Keras's
    buffer still carries the steps of the old rate, so for the next few
    dozen steps (momentum 0.9) it moves the weights further than PyTorch
    does. This class keeps the gradients in the buffer and applies the
    current learning rate to all of them, as PyTorch does, so that a
    recipe's schedule has the authors' effect.

    The momentum buffers hold gradients, not steps: a checkpoint of
    `keras.optimizers.SGD` (or of this class before it followed PyTorch)
    does not resume into this one with the same momentum.

    Args:
        l2: float, the weight decay coefficient (5e-4 in the CIFAR recipe).
        **kwargs: arguments of `keras.optimizers.SGD` (`learning_rate`,
            `momentum`, `nesterov`, ...).
    """

    def __init__(self, l2=0.0, **kwargs):
        if l2 < 0:
            raise ValueError(f"`l2` must be non-negative. Received: l2={l2!r}")
        super().__init__(**kwargs)
        self.l2 = l2

    def update_step(self, gradient, variable, learning_rate):
        if isinstance(variable, keras.Variable):
            variable = variable.value
        learning_rate = keras.ops.cast(learning_rate, variable.dtype)
        gradient = keras.ops.cast(gradient, variable.dtype)
        if self.l2:
            gradient = gradient + self.l2 * variable
        if self.momentum == 0:
            self.assign_sub(variable, learning_rate * gradient)
            return
        buffer = self.momentums[self._get_variable_index(variable)].value
        # Not `ops.cast`, which rounds a Python float through float32.
        momentum = tf.convert_to_tensor(self.momentum, variable.dtype)
        if self.nesterov:
            # PyTorch's order of operations: w -= lr * (g + momentum * b).
            buffer.assign(momentum * buffer + gradient)
            variable.assign_sub(learning_rate * (gradient + momentum * buffer))
            return
        # One kernel for `b <- momentum * b + g; w <- w - lr * b`, PyTorch's
        # arithmetic term for term, instead of six ops per variable: the
        # recipes' networks have about 500 variables, and the per-op cost
        # was 4% of the cifar10 preset's training step on the CPU.
        tf.raw_ops.ResourceApplyMomentum(
            var=variable.handle,
            accum=buffer.handle,
            lr=learning_rate,
            grad=gradient,
            momentum=momentum,
            use_locking=False,
            use_nesterov=False,
        )

    def get_config(self):
        config = super().get_config()
        config["l2"] = self.l2
        return config
