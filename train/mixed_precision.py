"""`--mixed_precision`: the dtype policy of a run and its loss scaling.

    python -m train.train --mixed_precision=bfloat16

The model is built with the policy `mixed_<setting>` (its own argument,
not the global policy): each residual function `F` computes in bfloat16 or
float16, while weights, the invertible stream and the logits stay float32
(see `irevnet_tf.IRevNet`). float16 needs loss scaling, which
`keras.optimizers.LossScaleOptimizer` does as `model.fit` applies it under
the policy; bfloat16 has float32's range and needs none.
"""

import keras


def dtype_policy(mixed_precision: str | None) -> str | None:
    """The model's dtype policy; None (the global policy) when unset."""
    if mixed_precision is None:
        return None
    return f"mixed_{mixed_precision}"


def training_optimizer(mixed_precision: str | None, optimizer):
    """`optimizer`, wrapped for loss scaling under float16."""
    if mixed_precision != "float16":
        return optimizer
    return StepCountingLossScaleOptimizer(optimizer)


@keras.saving.register_keras_serializable(package="train")
class StepCountingLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """A `LossScaleOptimizer` whose skipped steps count as steps.

    Keras's skips a step whose scaled gradients overflow (it halves the
    loss scale instead) without advancing `iterations`, so `iterations`
    falls behind the batches consumed: several times at the start of every
    run, while the scale comes down from 2**15. A run counts its progress
    in optimizer steps (where a resumed run continues in its data and
    learning-rate schedule, when it is finished), so here a skipped step
    advances `iterations` too, as PyTorch's scheduler steps once per batch
    whether `GradScaler` skipped the update or not.
    """

    def _stateful_handle_non_finite_grads(self):
        super()._stateful_handle_non_finite_grads()
        self.inner_optimizer.iterations.assign_add(1)
