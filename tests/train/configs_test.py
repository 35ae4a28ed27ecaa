"""The settings of a run: flags, recipes, checks."""

import os
import tempfile

from absl import flags
from absl.testing import parameterized

from irevnet_tf.testing.test_case import TestCase
from train.configs import flags as flags_lib
from train.configs.base import TrainConfig
from train.configs.resolve import resolve_config


def fresh_dir(test):
    return tempfile.mkdtemp(dir=test.get_temp_dir())


class ResolveConfigTest(TestCase):
    @parameterized.named_parameters(
        ("digits", "digits", "digits", "digits", 16, 64, 20, None),
        ("cifar10", "cifar10", "cifar", "cifar10", 32, 128, 200, None),
        ("cifar100", "cifar100", "cifar", "cifar10", 32, 128, 200, None),
        (
            "imagenet2012",
            "imagenet2012",
            "imagenet",
            "irevnet301",
            224,
            256,
            None,
            600_000,
        ),
        ("folder", "folder:/data/pets", "cifar", "cifar10", 32, 128, 200, None),
    )
    def test_defaults(
        self, dataset, recipe, preset, image_size, batch, epochs, steps
    ):
        config, resolved_recipe = resolve_config(TrainConfig(dataset=dataset))
        self.assertEqual(config.recipe, recipe)
        self.assertEqual(resolved_recipe.name, recipe)
        self.assertEqual(config.preset, preset)
        self.assertEqual(config.image_size, image_size)
        self.assertEqual(config.batch_size, batch)
        self.assertEqual(config.epochs, epochs)
        self.assertEqual(config.train_steps, steps)
        self.assertEqual(config.momentum, 0.9)
        self.assertEqual(config.learning_rate, 0.1)

    @parameterized.named_parameters(
        ("cifar10", "cifar10", 5e-4), ("imagenet2012", "imagenet2012", 1e-4)
    )
    def test_paper_weight_decay(self, dataset, decay):
        config, _ = resolve_config(TrainConfig(dataset))
        self.assertEqual(config.weight_decay, decay)

    def test_flags_override_the_recipe(self):
        config, _ = resolve_config(
            TrainConfig(
                dataset="cifar10",
                recipe="imagenet",
                batch_size=32,
                learning_rate=0.05,
                lr_schedule="cosine",
                train_steps=10,
                image_size=64,
            )
        )
        self.assertEqual(
            (config.batch_size, config.learning_rate, config.lr_schedule),
            (32, 0.05, "cosine"),
        )
        self.assertEqual((config.epochs, config.train_steps), (None, 10))
        self.assertEqual(config.weight_decay, 1e-4)  # From the recipe.
        self.assertEqual(config.image_size, 64)

    @parameterized.named_parameters(
        ("dataset", dict(dataset="mnist"), "Unknown dataset 'mnist'"),
        ("folder_path", dict(dataset="folder:"), "needs a path"),
        ("preset", dict(preset="resnet50"), "Unknown preset 'resnet50'"),
        ("recipe", dict(recipe="fast"), "Unknown recipe 'fast'"),
        ("image_size", dict(image_size=20), "not divisible by 8"),
        ("length", dict(epochs=2, train_steps=5), "not both"),
        ("batch", dict(batch_size=0), "batch_size=0"),
        ("momentum", dict(momentum=1.0), "momentum=1.0"),
        ("rate", dict(learning_rate=-1.0), "learning_rate=-1.0"),
        ("decay", dict(weight_decay=-1e-4), "weight_decay=-0.0001"),
        ("schedule", dict(lr_schedule="linear"), "lr_schedule='linear'"),
        ("strategy", dict(strategy="tpu"), "strategy='tpu'"),
        (
            "mixed_precision",
            dict(mixed_precision="float8"),
            "mixed_precision='float8'",
        ),
        ("checkpoints", dict(checkpoint_steps=0), "checkpoint_steps=0"),
    )
    def test_bad_settings(self, overrides, message):
        with self.assertRaisesRegex(ValueError, message):
            resolve_config(TrainConfig(**overrides))

    def test_model_dir_that_is_a_file(self):
        path = os.path.join(fresh_dir(self), "model")
        open(path, "w").close()
        with self.assertRaisesRegex(ValueError, "is a file"):
            resolve_config(TrainConfig(model_dir=path))


class FlagsTest(TestCase):
    """The flags generated from TrainConfig: spellings, types, defaults."""

    def parse(self, *argv):
        flag_values = flags.FlagValues()
        holders = flags_lib.define_flags(TrainConfig, flag_values)
        flag_values(["train", *argv])
        return flags_lib.config_from_flags(TrainConfig, holders)

    def test_every_documented_field_is_a_flag_with_its_default(self):
        self.assertEqual(self.parse(), TrainConfig())

    def test_values_and_spellings(self):
        config = self.parse(
            "--dataset=folder:/data/pets",
            "--batch_size=32",
            "--learning_rate=0.05",
            "--nomemory_saving",
            "--deterministic",
            "--lr_schedule=cosine",
            "--strategy=mirrored",
            "--export_dir=serving",
            "--mixed_precision=bfloat16",
        )
        self.assertEqual(config.dataset, "folder:/data/pets")
        self.assertEqual(config.batch_size, 32)
        self.assertEqual(config.learning_rate, 0.05)
        self.assertFalse(config.memory_saving)
        self.assertTrue(config.deterministic)
        self.assertEqual(config.lr_schedule, "cosine")
        self.assertEqual(config.strategy, "mirrored")
        self.assertEqual(config.export_dir, "serving")
        self.assertEqual(config.mixed_precision, "bfloat16")
        self.assertEqual(config.verbose, 1)  # Not a flag.

    @parameterized.named_parameters(
        ("enum", "--recipe=fast", "value should be one of"),
        ("integer", "--batch_size=many", "invalid literal for int"),
        ("float", "--momentum=high", "could not convert string to float"),
        ("not_a_flag", "--verbose=0", "Unknown command line flag 'verbose'"),
    )
    def test_bad_flags(self, argument, message):
        with self.assertRaisesRegex(flags.Error, message):
            self.parse(argument)

    def test_help_comes_from_the_field(self):
        flag_values = flags.FlagValues()
        flags_lib.define_flags(TrainConfig, flag_values)
        self.assertEqual(
            flag_values["checkpoint_steps"].help,
            "Save the training state every this many steps.",
        )
        self.assertEqual(flag_values["strategy"].flag_type(), "string enum")
