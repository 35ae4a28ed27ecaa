import json
import os
import subprocess
import sys
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

import irevnet_tf
from irevnet_tf import IRevNet
from irevnet_tf import IRevNetClassifier
from irevnet_tf.testing.layouts import CIFAR_LIKE
from irevnet_tf.testing.layouts import IMAGENET_LIKE
from irevnet_tf.testing.strategies import mirrored_strategy
from irevnet_tf.testing.test_case import TestCase
from irevnet_tf.testing.test_case import randomize_batch_norm
from irevnet_tf.testing.test_case import relative_error

LAYOUTS = {"cifar": CIFAR_LIKE, "imagenet": IMAGENET_LIKE}
# Worst variable measured: ~5e-14 in float64 and ~7e-6 in float32.
TOLERANCES = {"float64": 1e-10, "float32": 1e-4}


def twin_classifiers(layout, dtype="float32", dropout_rate=0.1, **kwargs):
    """A plain-autodiff and a memory-saving classifier with equal weights."""
    models = []
    for memory_saving in (False, True):
        backbone = IRevNet(
            memory_saving=memory_saving,
            dropout_rate=dropout_rate,
            seed=1234,  # equal dropout seed states (get_weights omits them)
            dtype=dtype,
            **dict(LAYOUTS[layout], **kwargs),
        )
        models.append(IRevNetClassifier(backbone, 10, dtype=dtype))
    randomize_batch_norm(models[0])
    models[1].set_weights(models[0].get_weights())
    return models


def batch(layout, size=4, dtype="float32"):
    shape = LAYOUTS[layout]["image_shape"]
    images = np.random.rand(size, *shape).astype(dtype)
    return tf.constant(images), tf.constant(np.arange(size) % 10)


def loss_gradients(model, images, labels):
    with tf.GradientTape() as tape:
        tape.watch(images)
        logits = model(images, training=True)
        loss = keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True
            )
        )
    return tape.gradient(loss, [images] + model.trainable_variables)


class MemorySavingTest(TestCase):
    def assert_gradients_match(self, model, expected, actual, rtol):
        names = ["images"] + [v.path for v in model.trainable_variables]
        self.assertEqual(len(expected), len(actual))
        for name, e, a in zip(names, expected, actual):
            e = np.asarray(e)
            if not np.any(e):
                # The first CIFAR block's F only ever sees zero padding.
                self.assertAllEqual(a, e, msg=name)
            else:
                self.assertLessEqual(relative_error(a, e), rtol, name)

    @parameterized.product(
        layout=tuple(LAYOUTS),
        dtype=tuple(TOLERANCES),
        regime=("eager", "graph", "xla"),
        standardization=(False, True),
    )
    def test_gradients_equal_autodiff(
        self, layout, dtype, regime, standardization
    ):
        compute = {
            "eager": loss_gradients,
            "graph": tf.function(loss_gradients),
            "xla": tf.function(loss_gradients, jit_compile=True),
        }[regime]
        # The standardisation is one more invertible layer of the chain:
        # recomputed with the injective first block of the CIFAR layout,
        # reconstructed by its inverse in the ImageNet layout.
        channels = LAYOUTS[layout]["image_shape"][-1]
        statistics = (
            dict(
                input_mean=[0.4914, 0.4822, 0.4465][:channels],
                input_std=[0.2023, 0.1994, 0.2010][:channels],
            )
            if standardization
            else {}
        )
        plain, saving = twin_classifiers(layout, dtype, **statistics)
        images, labels = batch(layout, dtype=dtype)
        self.assert_gradients_match(
            plain,
            compute(plain, images, labels),
            compute(saving, images, labels),
            TOLERANCES[dtype],
        )

    def test_batch_norm_statistics_update_once(self):
        plain, saving = twin_classifiers("cifar")
        images, labels = batch("cifar")
        before = [v.numpy() for v in plain.non_trainable_variables]
        for model in (plain, saving):
            tf.function(loss_gradients)(model, images, labels)
        moved = 0
        for old, p, s in zip(
            before,
            plain.non_trainable_variables,
            saving.non_trainable_variables,
        ):
            self.assertAllClose(s, p, atol=1e-6, rtol=1e-6, msg=p.path)
            moved += not np.array_equal(old, p.numpy())
        self.assertGreater(moved, 20)  # statistics did move, once

    def test_dropout_masks_are_replayed(self):
        # With dropout on, the twins agree only because the recomputation
        # uses the forward pass's masks; a different seed state disagrees.
        plain, saving = twin_classifiers("imagenet", dropout_rate=0.5)
        images, labels = batch("imagenet")
        expected = loss_gradients(plain, images, labels)
        self.assert_gradients_match(
            plain, expected, loss_gradients(saving, images, labels), 1e-4
        )
        # `plain` has advanced its seed: new masks, other gradients.
        other = loss_gradients(plain, images, labels)
        self.assertGreater(relative_error(other[0], expected[0]), 1e-3)

    @parameterized.named_parameters(("no_xla", False), ("xla", True))
    def test_train_on_batch_and_fit(self, jit_compile):
        # In float64: three SGD steps from these random weights are chaotic
        # in float32 (a relative change of 1e-6 in the initial weights moved
        # trained ones by up to 14%, measured), so any two float32 programs
        # that round differently (XLA fuses plain autodiff and memory saving
        # differently) end far apart, and a float32 comparison tests luck.
        plain, saving = twin_classifiers("cifar", "float64")
        images, labels = batch("cifar", size=8, dtype="float64")
        for model in (plain, saving):
            model.compile(
                keras.optimizers.SGD(0.1, momentum=0.9),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=jit_compile,
            )
            model.train_on_batch(images, labels)
            model.fit(images, labels, batch_size=4, verbose=0)
        for p, s in zip(plain.variables, saving.variables):
            self.assertAllClose(s, p, atol=1e-5, rtol=1e-4, msg=p.path)

    @parameterized.named_parameters(
        ("float32", "float32"),
        ("mixed_float16", "mixed_float16"),
        ("mixed_bfloat16", "mixed_bfloat16"),
    )
    def test_mirrored_strategy(self, policy):
        self.addCleanup(
            keras.mixed_precision.set_global_policy,
            keras.mixed_precision.global_policy(),
        )
        keras.mixed_precision.set_global_policy(policy)
        strategy = mirrored_strategy()
        images, labels = batch("imagenet", size=8)
        results = []
        with strategy.scope():
            plain, saving = twin_classifiers("imagenet", dtype=None)
            for model in (plain, saving):
                model.compile(
                    keras.optimizers.SGD(0.1, momentum=0.9),
                    keras.losses.SparseCategoricalCrossentropy(
                        from_logits=True
                    ),
                )
        before = [v.numpy() for v in plain.trainable_variables]
        for model in (plain, saving):
            model.fit(images, labels, batch_size=8, epochs=2, verbose=0)
            results.append([v.numpy() for v in model.variables])
        moved = [
            not np.array_equal(b, v.numpy())
            for b, v in zip(before, plain.trainable_variables)
        ]
        self.assertGreater(np.mean(moved), 0.8)
        # Under mixed policies memory saving recomputes every F from
        # bit-identical inputs: measured equal to plain autodiff bit for bit.
        for p, s, v in zip(*results, plain.variables):
            self.assertAllClose(s, p, atol=1e-5, rtol=1e-4, msg=v.path)

    def test_synchronized_batch_norm_matches_one_device(self):
        # Per-replica statistics differ from one device's; synchronized ones
        # give the single-device step on the global batch.
        images, labels = batch("imagenet", size=8)

        def one_step(strategy, synchronized):
            with strategy.scope():
                model, _ = twin_classifiers(
                    "imagenet",
                    dropout_rate=0.0,
                    synchronized_batch_norm=synchronized,
                )
                model.compile(
                    keras.optimizers.SGD(0.1),
                    keras.losses.SparseCategoricalCrossentropy(
                        from_logits=True
                    ),
                )
            model.fit(images, labels, batch_size=8, verbose=0)
            return [v.numpy() for v in model.trainable_variables]

        keras.utils.set_random_seed(7)
        reference = one_step(tf.distribute.OneDeviceStrategy("CPU:0"), False)
        mirrored = mirrored_strategy()
        keras.utils.set_random_seed(7)
        synchronized = one_step(mirrored, True)
        keras.utils.set_random_seed(7)
        per_replica = one_step(mirrored, False)
        error = relative_error(synchronized, reference)
        self.assertLess(error, 1e-5)
        self.assertGreater(relative_error(per_replica, reference), 100 * error)

    def test_memory_saving_is_in_the_config(self):
        backbone = IRevNet(memory_saving=False, **CIFAR_LIKE)
        self.assertFalse(backbone.get_config()["memory_saving"])
        self.assertTrue(IRevNet(**CIFAR_LIKE).memory_saving)
        model = IRevNetClassifier.from_preset(
            "cifar10", stage_depths=[1, 1, 1], memory_saving=False
        )
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        self.assertFalse(keras.saving.load_model(path).backbone.memory_saving)

    def test_compile_auto_leaves_memory_saving_models_unjitted(self):
        # compile(jit_compile="auto") turns XLA on where a GPU is present
        # (patched in here); under XLA memory would not stay flat.
        def compiled(model, **kwargs):
            model.compile("sgd", "mse", **kwargs)
            return model.jit_compile

        auto_is_xla = mock.patch.object(
            keras.Model, "_resolve_auto_jit_compile", return_value=True
        )
        with auto_is_xla:
            plain = IRevNet(memory_saving=False, **CIFAR_LIKE)
            self.assertTrue(compiled(plain))
            self.assertFalse(compiled(IRevNet(**CIFAR_LIKE)))
            classifier = IRevNetClassifier(IRevNet(**CIFAR_LIKE), 10)
            self.assertFalse(compiled(classifier))
            # An explicit request is honoured.
            self.assertTrue(compiled(classifier, jit_compile=True))

    @parameterized.named_parameters(("graph", False), ("xla", True))
    def test_activation_memory_stays_flat_with_depth(self, jit_compile):
        peaks = {
            (saving, depth): peak_memory(depth, saving, jit_compile)
            for saving in (False, True)
            for depth in (8, 32)
        }
        # Plain autodiff stores every block's activations, memory saving
        # none. Measured from 8 to 32 blocks: without XLA +75 MB and +2 MB
        # (with oneDNN off +71 MB and +7 MB, a step between 8 and 16 blocks,
        # flat after it); with XLA +100 MB and +0 MB (without the
        # optimisation barrier, memory saving's peaks equal plain's).
        plain_growth = peaks[False, 32] - peaks[False, 8]
        saving_growth = peaks[True, 32] - peaks[True, 8]
        self.assertGreater(plain_growth, 40 * 2**20)
        self.assertLess(saving_growth, 0.15 * plain_growth)

    @pytest.mark.large
    def test_cifar10_preset_holds_a_fraction_of_plain_autodiffs_memory(self):
        # The real preset, batch 32, no XLA. Measured by this script
        # (plain SGD): 38 against 368 MiB, 0.10; with momentum 53 against
        # 392 (bench.memory), 0.14. Storing activations would give ~1.
        plain = peak_memory("cifar10", False, False)
        saving = peak_memory("cifar10", True, False)
        self.assertGreater(plain, 200 * 2**20)
        self.assertLess(saving, 0.25 * plain)


def peak_memory(depth, memory_saving, jit_compile):
    """Peak memory of one compiled training step (`peak_memory.py`).

    Measured in a fresh process: the CPU allocator's statistics need an
    environment variable before TensorFlow starts.
    """
    env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true")
    # The script must import the irevnet_tf under test, not whichever one
    # is installed.
    source_root = os.path.dirname(os.path.dirname(irevnet_tf.__file__))
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [source_root, env.get("PYTHONPATH")])
    )
    script = os.path.join(os.path.dirname(__file__), "peak_memory.py")
    output = subprocess.run(
        [sys.executable, script]
        + [str(arg) for arg in (depth, memory_saving, jit_compile)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output)["peak_bytes"]
