import keras
import numpy as np
import tensorflow as tf
import torch
from absl.testing import parameterized

from irevnet_tf.testing.strategies import mirrored_strategy
from irevnet_tf.testing.test_case import TestCase
from train.optimizers import SGDWithL2

STEPS = 8
# The learning rate drops by 5 before this step, as in the CIFAR recipe.
DROP_STEP = 4
# Keras holds learning rates in float32: PyTorch gets the same values.
LEARNING_RATES = [float(np.float32(0.1)), float(np.float32(0.02))]


def pytorch_run(initial, targets, momentum, nesterov, l2):
    """PyTorch's SGD on 0.5 * ||w - target||^2, the authors' optimizer."""
    weight = torch.tensor(initial, requires_grad=True)
    optimizer = torch.optim.SGD(
        [weight],
        lr=LEARNING_RATES[0],
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=l2,
    )
    for step, target in enumerate(targets):
        if step == DROP_STEP:
            optimizer.param_groups[0]["lr"] = LEARNING_RATES[1]
        optimizer.zero_grad()
        loss = 0.5 * ((weight - torch.tensor(target)) ** 2).sum()
        loss.backward()
        optimizer.step()
    return weight.detach().numpy()


def keras_run(optimizer_class, initial, targets, jit_compile, **kwargs):
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        # PiecewiseConstantDecay switches once step > boundary.
        [DROP_STEP - 1],
        LEARNING_RATES,
    )
    variable = keras.Variable(initial)
    optimizer = optimizer_class(learning_rate=schedule, **kwargs)

    @tf.function(jit_compile=jit_compile)
    def step(target):
        optimizer.apply([variable - target], [variable])

    for target in targets:
        step(tf.constant(target))
    return variable.numpy()


class SGDWithL2Test(TestCase):
    @parameterized.named_parameters(
        (f"{name}_{regime}", momentum, nesterov, jit_compile)
        for name, momentum, nesterov in (
            ("plain", 0.0, False),
            ("momentum", 0.9, False),
            ("nesterov", 0.9, True),
        )
        for regime, jit_compile in (("graph", False), ("xla", True))
    )
    def test_matches_pytorch_sgd_through_a_learning_rate_drop(
        self, momentum, nesterov, jit_compile
    ):
        rng = np.random.default_rng(0)
        initial = rng.normal(size=(3, 4))
        targets = [rng.normal(size=(3, 4)) for _ in range(STEPS)]
        expected = pytorch_run(initial, targets, momentum, nesterov, 5e-4)
        actual = keras_run(
            SGDWithL2,
            initial,
            targets,
            jit_compile,
            l2=5e-4,
            momentum=momentum,
            nesterov=nesterov,
        )
        # float64 throughout: measured 1e-16.
        self.assertAllClose(actual, expected, atol=1e-13, rtol=0)

    def test_keras_sgd_differs_after_the_drop(self):
        # What this optimizer is for: Keras's formulation (the learning rate
        # folded into the momentum buffer) departs from PyTorch's after the
        # learning rate drops, and agrees before.
        class KerasSGDWithL2(keras.optimizers.SGD):
            def update_step(self, gradient, variable, learning_rate):
                gradient = gradient + 5e-4 * variable
                return super().update_step(gradient, variable, learning_rate)

        rng = np.random.default_rng(0)
        initial = rng.normal(size=(3, 4))
        targets = [rng.normal(size=(3, 4)) for _ in range(STEPS)]
        for steps, close in ((DROP_STEP, True), (STEPS, False)):
            expected = pytorch_run(initial, targets[:steps], 0.9, False, 5e-4)
            actual = keras_run(
                KerasSGDWithL2, initial, targets[:steps], False, momentum=0.9
            )
            # Keras's SGD rounds the momentum through float32.
            difference = np.max(np.abs(actual - expected))
            self.assertEqual(difference < 1e-6, close, difference)

    def test_float32_variables(self):
        rng = np.random.default_rng(1)
        initial = rng.normal(size=(5,)).astype(np.float32)
        targets = [rng.normal(size=(5,)).astype(np.float32) for _ in range(6)]
        expected = pytorch_run(initial, targets, 0.9, False, 5e-4)
        actual = keras_run(
            SGDWithL2, initial, targets, False, l2=5e-4, momentum=0.9
        )
        self.assertEqual(actual.dtype, np.float32)
        self.assertAllClose(actual, expected, atol=1e-6, rtol=0)

    def test_mirrored_strategy_updates_every_replica_like_pytorch(self):
        # The update runs once per replica on that replica's copy of the
        # variable and of its momentum buffer, with the summed gradient.
        strategy = mirrored_strategy()
        rng = np.random.default_rng(2)
        initial = rng.normal(size=(3, 4))
        targets = [rng.normal(size=(3, 4)) for _ in range(STEPS)]
        with strategy.scope():
            variable = keras.Variable(initial)
            optimizer = SGDWithL2(
                l2=5e-4, learning_rate=LEARNING_RATES[0], momentum=0.9
            )
            optimizer.build([variable])

        @tf.function
        def step(target):
            def replica_step(target):
                # Each of the two replicas contributes half the gradient.
                optimizer.apply([0.5 * (variable - target)], [variable])

            strategy.run(replica_step, args=(target,))

        for target in targets[:DROP_STEP]:
            step(tf.constant(target))
        expected = pytorch_run(initial, targets[:DROP_STEP], 0.9, False, 5e-4)
        replicas = strategy.experimental_local_results(variable.value)
        self.assertLen(replicas, 2)
        for replica in replicas:
            # float64; the halves sum exactly: measured 0.
            self.assertAllClose(replica, expected, atol=1e-13, rtol=0)
