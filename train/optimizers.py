"""SGD with coupled L2 weight decay, as the paper and the authors train."""

import keras


@keras.saving.register_keras_serializable(package="irevnet_train")
class SGDWithL2(keras.optimizers.SGD):
    """SGD whose weight decay is added to the gradient before momentum.

        g <- g + l2 * w          then Keras SGD with momentum on g

    This is the gradient of the loss plus `l2 / 2 * sum(w ** 2)` over every
    trained variable (kernels, biases, BatchNorm scales and offsets), which is
    what PyTorch's `SGD(weight_decay=...)` does and what the authors trained
    with. Keras's own `weight_decay` argument is decoupled instead
    (`w -= lr * wd * w` after the update, outside momentum) and is not used.

    Keras folds the learning rate into the momentum buffer
    (`v = m * v - lr * g; w += v`) while PyTorch applies it after
    (`b = m * b + g; w -= lr * b`); the two agree while the learning rate is
    constant and differ for a few steps after each drop.

    Args:
        l2: float, the weight decay coefficient (5e-4 in the CIFAR recipe).
        **kwargs: arguments of `keras.optimizers.SGD` (`learning_rate`,
            `momentum`, ...).
    """

    def __init__(self, l2=0.0, **kwargs):
        if l2 < 0:
            raise ValueError(f"`l2` must be non-negative. Received: l2={l2!r}")
        super().__init__(**kwargs)
        self.l2 = l2

    def update_step(self, gradient, variable, learning_rate):
        if self.l2:
            gradient = gradient + self.l2 * keras.ops.cast(
                variable, gradient.dtype
            )
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["l2"] = self.l2
        return config
