"""When things happen in a run: the learning rate by step, and the `fit`
calls that take an interrupted run from its checkpoint to its last step."""

import keras


def learning_rate_schedule(
    name: str,
    learning_rate: float,
    total_steps: int,
    boundaries: tuple = (),
    decay_factor: float = 1.0,
):
    """The learning rate as a function of the optimizer step.

    "step" multiplies it by `decay_factor` at every boundary (fractions of
    `total_steps`): with boundaries (0.3, ...) and 200 epochs, steps of epoch
    61 onwards use the second value, as in the authors' code. "cosine"
    decays it to 0 over the run; "constant" keeps it.
    """
    if name == "constant":
        return learning_rate
    if name == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=total_steps
        )
    # PiecewiseConstantDecay switches once step > boundary; the optimizer
    # passes the number of steps already taken.
    steps = [max(round(f * total_steps) - 1, 0) for f in boundaries]
    values = [learning_rate * decay_factor**i for i in range(len(steps) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(steps, values)


def fit_phases(
    start_step: int, total_steps: int, steps_per_epoch: int
) -> list[tuple[int, int, int]]:
    """The `fit` calls that take training from `start_step` to the end.

    Returns:
        A list of `(initial_epoch, epochs, steps_per_epoch)`: the rest of an
        interrupted epoch, the whole epochs after it, and a last partial
        epoch if `total_steps` is not a whole number of epochs.
    """
    phases = []
    step = start_step
    while step < total_steps:
        epoch, offset = divmod(step, steps_per_epoch)
        steps = min(steps_per_epoch - offset, total_steps - step)
        if steps == steps_per_epoch:
            count = (total_steps - step) // steps_per_epoch
            phases.append((epoch, epoch + count, steps_per_epoch))
            step += count * steps_per_epoch
        else:
            phases.append((epoch, epoch + 1, steps))
            step += steps
    return phases
