"""The precision of the invertible stream under mixed-precision policies.

Under a mixed policy (`keras.mixed_precision.set_global_policy(
"mixed_float16")` or `"mixed_bfloat16"`), i-RevNet splits the work in two:

  * the stream, what the inverse reconstructs (the two halves, the
    additions and subtractions of the coupling, the invertible
    down-sampling, the injective padding, the split and the merge), stays
    in the policy's variable dtype, float32;
  * each residual function `F` computes in the policy's compute dtype
    (float16 or bfloat16), where the convolutions are fast, and its output
    is cast to float32 before it is added to the stream.

A float32 stream alone does not make the inverse exact. The inverse
rebuilds every block's input `x2` from the block above with float32
rounding errors of about 1e-7, and `F` rounds that input to float16 (or
bfloat16): where a value lies that close to a rounding boundary, which
happens to about one element in 10^4, `F` sees a value one low-precision
step away from the forward pass's and returns an output that differs by
about 1e-3 of it. That error is larger than the next block's rounding
boundaries are apart, so it spreads from block to block: on the `cifar10`
preset (random weights, BatchNorm statistics away from the identity) the
inverse misses by 5e-4 relative under `mixed_float16` and 3e-3 under
`mixed_bfloat16`, against 7e-7 in float32.

So under a mixed policy the stream is fixed point: the backbone rounds its
input to a multiple of `GRID = 2**-20` and every block rounds `F`'s output
to one. float32 adds and subtracts multiples of `GRID` exactly while the
results stay below `2**24 * GRID = 16` in magnitude (the largest stream
values measured: 4.9 in the untrained `cifar10` preset with BatchNorm
statistics away from the identity, 4.6 in the `digits` preset after two
epochs of `--mixed_precision=float16` training; not measured on a fully
trained CIFAR model, whose `metrics.json` reports the reconstruction
error). The inverse then rebuilds every `x2` bit for bit, every
`F` gets the input it had in the forward pass, and the only error left is
the rounding of the input, at most `GRID / 2` per pixel (4.8e-7 relative
on images uniform in [0, 1]). Memory-saving training recomputes each `F`
from the same input as the forward pass, so its gradients are those of
plain autodiff. Where the stream exceeds 16, additions round again and the
inverse degrades to the float32 stream's error above, no worse.

The rounding's gradient is the identity (a straight-through estimator):
it moves values by at most `GRID / 2`, far below the low-precision
rounding of `F` itself. Policies that are not mixed (float32, float64)
round nothing.
"""

import keras
import tensorflow as tf

# float32 holds 24 significant bits: 20 below the binary point for
# resolution, 4 above it for range (|values| < 16).
GRID = 2.0**-20


def stream_dtype_policy(dtype_policy):
    """The policy of the stream layers: the variable dtype throughout."""
    return keras.DTypePolicy(dtype_policy.variable_dtype)


def is_mixed(dtype_policy):
    """Whether `dtype_policy` computes in another dtype than it stores."""
    return dtype_policy.compute_dtype != dtype_policy.variable_dtype


def round_to_grid(x):
    """`x` rounded to a multiple of `GRID`, with an identity gradient.

    `x + (r - x)` is exactly `r` in floating point: `r - x` is exact (the
    two are within `GRID / 2` of each other, or `r` is zero), and so is the
    sum, which equals the representable `r`.
    """
    rounded = tf.round(x / GRID) * GRID
    return x + tf.stop_gradient(rounded - x)
