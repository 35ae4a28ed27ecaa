"""The default kernel initializer of i-RevNet layers."""

import keras


def default_kernel_initializer():
    """PyTorch's default for `Conv2d` and `Linear` kernels, as Keras objects.

    `kaiming_uniform_(a=sqrt(5))` is uniform on `+-1 / sqrt(fan_in)`, that is
    variance `1 / (3 * fan_in)`. The authors trained with it, and it keeps an
    untrained deep i-RevNet well conditioned: with Keras's `he_normal` the
    untrained `cifar10` preset (54 blocks) amplifies float32 rounding so much
    that its inverse misses by a relative error of about 25; with this one,
    about 2e-7.
    """
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
    )
