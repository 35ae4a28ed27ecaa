"""Memory-saving backprop through a chain of invertible layers.

This module holds the whole policy of the chain `[D], S, B_1, ..., B_J, M`
that `IRevNet` runs, so that it can be read in one place:

  * `call_chain` and `invert_chain`: the chain in either direction, with
    memory saving in training mode;
  * `recomputed_layer_count`: which leading layers the gradient recomputes
    from the stored input rather than reconstructs with the inverse;
  * `step_call_kwargs`: the dropout seeds of one training step, one per
    layer, replayed by the reconstruction;
  * `resolve_jit_compile`: whether `compile(jit_compile="auto")` uses XLA.

The mechanics are `call_with_memory_saving` (reconstruct from outputs) and
`call_with_recomputation` (recompute from stored inputs).
"""

import tensorflow as tf

from irevnet_tf.layers.xla import in_xla_context
from irevnet_tf.layers.xla import optimization_barrier


def call_chain(
    layers, inputs, training=None, memory_saving=True, seed_generator=None
):
    """Applies `layers` in sequence, with memory saving in training mode.

    Args:
        layers: list of `InvertibleLayer`s, in forward order.
        inputs: the input of the first layer.
        training: bool or None, BatchNorm and dropout mode.
        memory_saving: bool. In training mode, True stores no activations
            for the gradient (see `call_with_memory_saving`); False leaves
            backpropagation to plain autodiff.
        seed_generator: optional `keras.random.SeedGenerator`, the source
            of the dropout seeds (see `step_call_kwargs`).

    Returns:
        The output of the last layer.
    """
    layer_kwargs = step_call_kwargs(layers, seed_generator, training)
    if not (training and memory_saving):
        return _apply(layers, layer_kwargs, inputs, training)
    x = inputs
    recomputed = recomputed_layer_count(layers)
    if recomputed:
        x = call_with_recomputation(
            layers[:recomputed], x, training, layer_kwargs[:recomputed]
        )
    if recomputed < len(layers):
        x = call_with_memory_saving(
            layers[recomputed:], x, training, layer_kwargs[recomputed:]
        )
    return x


def invert_chain(layers, outputs, training=None, seed_generator=None):
    """Applies the inverses of `layers` in reverse order.

    Arguments as in `call_chain`; `outputs` is the last layer's output.
    """
    layer_kwargs = step_call_kwargs(layers, seed_generator, training)
    x = outputs
    for layer, kwargs in zip(reversed(layers), reversed(layer_kwargs)):
        x = layer.inverse(x, training=training, **kwargs)
    return x


def step_call_kwargs(layers, seed_generator, training):
    """The further call arguments of each layer for one step.

    In training mode with a `seed_generator`, one seed is drawn per step and
    every layer with dropout (a `dropout_rate` above zero) gets its own mask
    seed `dropout_seed`, derived from that seed and the layer's position.
    A recomputation that replays these arguments replays the masks. The
    layers themselves hold no seed generators for this.

    Args:
        layers: list of layers, in forward order.
        seed_generator: `keras.random.SeedGenerator` or None.
        training: bool or None.

    Returns:
        A list with one dict of keyword arguments per layer.
    """
    if not (training and seed_generator is not None):
        return [{} for _ in layers]
    step_seed = seed_generator.next()
    return [
        {"dropout_seed": tf.random.experimental.stateless_fold_in(step_seed, i)}
        if getattr(layer, "dropout_rate", 0) > 0
        else {}
        for i, layer in enumerate(layers)
    ]


def recomputed_layer_count(layers):
    """How many leading layers memory saving recomputes, not inverts.

    Reconstructed activations carry rounding errors. Where they should lie
    in the image of an injective layer, the block after it sees channels
    that are constant by construction (zero padding plus `F(0)`), and its
    training-mode BatchNorm divides their reconstruction noise by
    sqrt(epsilon): gradients 15% off in the untrained `cifar10` preset. So
    the layers up to the one after the last injective layer (a layer whose
    `is_injective` is True) are recomputed from the chain's input instead of
    reconstructed (`call_with_recomputation`): exact, and their activations
    exist only while they are backpropagated.
    """
    injective = [
        i
        for i, layer in enumerate(layers)
        if getattr(layer, "is_injective", False)
    ]
    return min(injective[-1] + 2, len(layers)) if injective else 0


def call_with_memory_saving(layers, inputs, training, layer_kwargs):
    """Applies `layers` in sequence with a gradient that stores nothing.

    The forward pass keeps only its final output. The gradient walks the
    chain backwards: each layer's `reconstruct_and_backprop` rebuilds its
    inputs from its outputs with the exact inverse and backpropagates
    through a local recomputation. Activation memory is that of one layer,
    whatever the depth, at the cost of about one more forward pass.

    Args:
        layers: list of `InvertibleLayer`s, in forward order.
        inputs: the input of the first layer.
        training: the mode of the forward pass (and of the recomputation).
        layer_kwargs: list of dicts, the further call arguments of each layer
            (dropout seeds), replayed identically by the recomputation.

    Returns:
        The output of the last layer; its gradient flows to `inputs` and to
        every trainable variable of `layers`.
    """

    @tf.custom_gradient
    def chain(x):
        y = _apply(layers, layer_kwargs, x, training)

        def grad_fn(dy, variables=None):
            variables = list(variables or [])
            # `variables` are the tf.Variables the forward pass read, in an
            # order of TensorFlow's choosing: match gradients by identity.
            position = {v.ref(): i for i, v in enumerate(variables)}
            variable_gradients = [None] * len(variables)
            outputs, gradients = y, dy
            for layer, kwargs in zip(reversed(layers), reversed(layer_kwargs)):
                outputs = _after(outputs, gradients)
                outputs, gradients, layer_gradients = (
                    layer.reconstruct_and_backprop(
                        outputs, gradients, training=training, **kwargs
                    )
                )
                for variable, gradient in zip(
                    layer.trainable_variables, layer_gradients
                ):
                    i = position.get(variable.value.ref())
                    if i is None:
                        continue
                    if variable_gradients[i] is not None:
                        gradient = variable_gradients[i] + gradient
                    variable_gradients[i] = gradient
            return gradients, [
                tf.zeros_like(v) if g is None else g
                for v, g in zip(variables, variable_gradients)
            ]

        return y, grad_fn

    return chain(inputs)


def call_with_recomputation(layers, inputs, training, layer_kwargs):
    """Applies `layers` in sequence, storing only `inputs` for the gradient.

    For layers whose inputs cannot be reconstructed accurately enough from
    their outputs (see `recomputed_layer_count`): the gradient
    recomputes the forward pass from the stored inputs, with the same
    dropout masks and without updating BatchNorm statistics again, and
    backpropagates through it. Exact, and the activations exist only while
    this part is backpropagated. Arguments as in `call_with_memory_saving`.
    """

    @tf.custom_gradient
    def chain(x):
        y = _apply(layers, layer_kwargs, x, training)

        def grad_fn(*dy, variables=None):
            # One gradient per output: a tensor, or the two halves.
            dy = dy[0] if len(dy) == 1 else dy
            variables = list(variables or [])
            # Recompute only once the gradient arrives, not right after the
            # forward pass (which would hold these activations throughout).
            x_again = _after(x, dy)
            with tf.GradientTape() as tape:
                tape.watch(x_again)
                y_again = _apply(
                    layers, layer_kwargs, x_again, training, recompute=True
                )
            return tape.gradient(
                y_again,
                (x_again, variables),
                output_gradients=dy,
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )

        return y, grad_fn

    return chain(inputs)


def _apply(layers, layer_kwargs, x, training, recompute=False):
    """`layers` in sequence; `recompute=True` leaves their state alone."""
    for layer, kwargs in zip(layers, layer_kwargs):
        call = layer.recompute if recompute else layer
        x = call(x, training=training, **kwargs)
    return x


def _after(tensors, gradients):
    """`tensors`, made to depend on `gradients`, for a reconstruction.

    In a graph, the reconstruction of a layer's inputs depends only on its
    outputs, so the executor would run every reconstruction as soon as the
    forward pass ends, holding all activations at once. Making the tensors
    depend on the incoming gradient schedules each reconstruction after the
    layer above has been backpropagated, which keeps memory flat. Data
    dependencies rather than control dependencies, because XLA ignores the
    latter (`tf.recompute_grad` does the same).

    Without XLA, an exact zero computed from the gradient is added. XLA
    folds that zero away, and then sees that a reconstruction repeats
    computations of the forward pass (a block's `y1` is the very tensor
    `x2`, so `F(x2)` is computed twice) and merges them, keeping the forward
    pass's activations alive until the backward pass: memory grows with
    depth again. Under XLA the tensors and the gradient go through one
    optimisation barrier instead, as in `jax.checkpoint`: XLA may neither
    look through it (no merging) nor move the reconstruction before the
    gradient exists.
    """
    if in_xla_context():
        flat = tf.nest.flatten(tensors)
        through = optimization_barrier(*flat, *tf.nest.flatten(gradients))
        return tf.nest.pack_sequence_as(tensors, through[: len(flat)])
    first = tf.nest.flatten(gradients)[0]
    # One element is enough; a comparison graph optimisers cannot fold away.
    flag = tf.cast(tf.reshape(first, [-1])[:1], tf.bool)
    zero = tf.reduce_sum(tf.where(flag == flag, 0.0, 1.0))
    return tf.nest.map_structure(lambda t: t + tf.cast(zero, t.dtype), tensors)


def resolve_jit_compile(jit_compile, memory_saving):
    """The `jit_compile` that `Model.compile` should get.

    Under XLA each reconstruction goes through an optimisation barrier
    (`_after`), so memory stays flat with `jit_compile=True` too (without
    it XLA merged the reconstruction into the forward pass: the peak of 32
    blocks was 2/3 of plain autodiff's). The default "auto" (XLA on when a
    GPU is present) still means no XLA for memory-saving models: their
    speed under XLA was measured on CPUs only (bench/memory.py), where it
    was not consistently at least that of memory saving without XLA. An
    explicit `True` is honoured and computes the same gradients.
    """
    if memory_saving and jit_compile == "auto":
        return False
    return jit_compile
