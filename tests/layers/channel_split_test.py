import numpy as np

from irevnet_tf import ChannelMerge
from irevnet_tf import ChannelSplit
from irevnet_tf.testing.test_case import TestCase


class ChannelSplitTest(TestCase):
    def test_splits_at_half(self):
        x = np.random.rand(2, 4, 4, 6).astype("float32")
        x1, x2 = ChannelSplit()(x)
        self.assertAllEqual(x1, x[..., :3])
        self.assertAllEqual(x2, x[..., 3:])

    def test_odd_channels_give_the_larger_second_half(self):
        # The authors' CIFAR model splits RGB into 1 + 2 channels.
        x1, x2 = ChannelSplit()(np.random.rand(1, 2, 2, 3).astype("float32"))
        self.assertEqual((x1.shape[-1], x2.shape[-1]), (1, 2))

    def test_invertible(self):
        for dtype in ("float32", "float64"):
            x = np.random.rand(2, 4, 4, 5).astype(dtype)
            self.assert_invertible(ChannelSplit(dtype=dtype), x, rtol=0.0)
            halves = ChannelSplit(dtype=dtype)(x)
            self.assert_invertible(ChannelMerge(dtype=dtype), halves, rtol=0.0)

    def test_merge_is_the_inverse_of_split(self):
        x = np.random.rand(2, 4, 4, 5).astype("float32")
        self.assertAllEqual(ChannelMerge()(ChannelSplit()(x)), x)
        x1, x2 = ChannelMerge().inverse(x)
        self.assertAllEqual(x1, x[..., :2])

    def test_serialization(self):
        x = np.random.rand(2, 4, 4, 4)
        self.run_serialization_test(ChannelSplit(), x)
        self.run_serialization_test(ChannelMerge(), (x, x))

    def test_one_channel_cannot_be_split(self):
        with self.assertRaisesRegex(
            ValueError, r"at least 2 channels.*\(1, 2, 2, 1\)"
        ):
            ChannelSplit()(np.zeros((1, 2, 2, 1), "float32"))
