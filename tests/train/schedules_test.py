"""Learning-rate schedules and the fit phases of a resumed run."""

from absl.testing import parameterized

from irevnet_tf.testing.test_case import TestCase
from train import schedules
from train.configs import recipes


class LearningRateScheduleTest(TestCase):
    @parameterized.parameters(
        (1, 0.1),
        (60, 0.1),
        (61, 0.02),
        (120, 0.02),
        (121, 0.004),
        (161, 0.0008),
        (200, 0.0008),
    )
    def test_cifar_steps_as_the_authors(self, epoch, expected):
        # 200 epochs of one step: epochs 1-60 use 0.1, 61-120 0.02, 121-160
        # 0.004, 161-200 0.0008 (pytorch-i-revnet utils_cifar.learning_rate).
        recipe = recipes.CIFAR
        schedule = schedules.learning_rate_schedule(
            "step", 0.1, 200, recipe.lr_boundaries, recipe.lr_decay_factor
        )
        # The update of epoch e sees e - 1 steps taken.
        self.assertAllClose(schedule(epoch - 1), expected)

    @parameterized.parameters(
        (0, 0.1),
        (159_999, 0.1),
        (160_000, 0.01),
        (320_000, 0.001),
        (480_000, 0.0001),
        (599_999, 0.0001),
    )
    def test_imagenet_divides_by_ten_every_160k(self, step, expected):
        recipe = recipes.IMAGENET
        schedule = schedules.learning_rate_schedule(
            "step", 0.1, 600_000, recipe.lr_boundaries, recipe.lr_decay_factor
        )
        self.assertAllClose(schedule(step), expected)

    def test_cosine_and_constant(self):
        cosine = schedules.learning_rate_schedule("cosine", 0.1, 100)
        self.assertAllClose(cosine(0), 0.1)
        self.assertAllClose(cosine(50), 0.05)
        self.assertAllClose(cosine(100), 0.0)
        self.assertEqual(
            schedules.learning_rate_schedule("constant", 0.3, 9), 0.3
        )


class FitPhasesTest(TestCase):
    @parameterized.named_parameters(
        ("fresh", 0, 44, 22, [(0, 2, 22)]),
        ("mid_epoch", 5, 44, 22, [(0, 1, 17), (1, 2, 22)]),
        ("epoch_boundary", 22, 44, 22, [(1, 2, 22)]),
        ("last_epoch", 30, 44, 22, [(1, 2, 14)]),
        ("finished", 44, 44, 22, []),
        ("partial_last_epoch", 0, 50, 22, [(0, 2, 22), (2, 3, 6)]),
        ("resumed_partial", 30, 50, 22, [(1, 2, 14), (2, 3, 6)]),
        ("shorter_than_an_epoch", 3, 10, 22, [(0, 1, 7)]),
    )
    def test_phases(self, start, total, per_epoch, expected):
        phases = schedules.fit_phases(start, total, per_epoch)
        self.assertEqual(phases, expected)
        self.assertEqual(
            sum((end - begin) * steps for begin, end, steps in phases),
            total - start,
        )
