import os
import tempfile
import zlib

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl.testing import parameterized

from irevnet_tf import datasets
from irevnet_tf.datasets.digits import digits_arrays
from irevnet_tf.datasets.digits import split_indices
from irevnet_tf.testing.digit_files import prepared_digits_dir
from irevnet_tf.testing.digit_files import write_digit_folder
from irevnet_tf.testing.test_case import TestCase


def fresh_dir(test):
    return tempfile.mkdtemp(dir=test.get_temp_dir())


def as_arrays(dataset, limit=None):
    if limit is not None:
        dataset = dataset.take(limit)
    images, labels = zip(*dataset.as_numpy_iterator())
    return np.stack(images), np.array(labels)


class DigitsTest(TestCase):
    def load(self, split, **kwargs):
        return datasets.load(
            "digits", split, data_dir=prepared_digits_dir(), **kwargs
        )

    def test_info(self):
        _, info = self.load("train", image_size=16)
        self.assertEqual(info.num_examples, 1437)
        self.assertEqual(info.num_classes, 10)
        self.assertEqual(info.image_shape, (16, 16, 1))
        self.assertEqual(info.eval_split, "test")
        self.assertEqual(info.class_names, tuple(str(d) for d in range(10)))
        self.assertEqual(info.mean, (0.3054,))

    def test_fixed_split_is_a_partition(self):
        _, all_labels = digits_arrays()
        train_indices, test_indices = split_indices(all_labels)
        self.assertEmpty(set(train_indices) & set(test_indices))
        self.assertLen(set(train_indices) | set(test_indices), 1797)

    @parameterized.named_parameters(("train", "train", 0), ("test", "test", 1))
    def test_fixed_split_holds_scikit_learns_images(self, split, which):
        # At the native size the pipeline returns the stored pixels / 255.
        all_images, all_labels = digits_arrays()
        indices = split_indices(all_labels)[which]
        dataset, info = self.load(split)
        self.assertEqual(info.image_shape, (8, 8, 1))
        images, labels = as_arrays(dataset)
        pixels = np.round(images * 255).astype(np.uint8)
        loaded = sorted((int(y), p.tobytes()) for p, y in zip(pixels, labels))
        expected = sorted(
            (int(all_labels[i]), all_images[i].tobytes()) for i in indices
        )
        self.assertEqual(loaded, expected)

    def test_pixels_in_unit_range_and_resized(self):
        images, labels = as_arrays(self.load("test", image_size=16)[0])
        self.assertEqual(images.shape, (360, 16, 16, 1))
        self.assertEqual(images.dtype, np.float32)
        self.assertGreaterEqual(images.min(), 0.0)
        self.assertLessEqual(images.max(), 1.0)
        self.assertEqual(labels.dtype, np.int32)
        self.assertEqual(sorted(set(labels)), list(range(10)))

    def test_pipelines_yield_pixels_only(self):
        # Standardisation is the model's (`IRevNet(input_mean=...)`): no
        # pipeline option, nothing to undo.
        with self.assertRaisesRegex(TypeError, "normalize"):
            self.load("test", image_size=16, normalize=True)
        _, info = self.load("test", image_size=16)
        self.assertFalse(hasattr(info, "normalized"))
        self.assertFalse(hasattr(info, "denormalize"))

    def test_statistics_are_those_of_the_training_images(self):
        images = as_arrays(self.load("train")[0])[0]
        _, info = self.load("train")
        self.assertAllClose(info.mean, [images.mean()], atol=1e-4)
        self.assertAllClose(info.std, [images.std()], atol=1e-4)

    def test_training_pipeline_repeats_and_is_seeded(self):
        def first_batches(seed):
            dataset, _ = self.load(
                "train",
                image_size=16,
                training=True,
                seed=seed,
                deterministic=True,
            )
            return as_arrays(dataset.batch(500), limit=4)

        images, labels = first_batches(3)
        # 4 batches of 500 are more than the 1,437 training images.
        self.assertEqual(images.shape, (4, 500, 16, 16, 1))
        again, again_labels = first_batches(3)
        self.assertAllEqual(images, again)
        self.assertAllEqual(labels, again_labels)
        other, _ = first_batches(4)
        self.assertNotAllClose(images, other)

    @parameterized.named_parameters(
        ("mid_epoch", 5, None),
        ("epoch_boundary", 1437, None),
        ("next_epoch", 1500, None),
        ("third_epoch", 2 * 1437 + 3, None),
        ("second_pipeline", 723, 1),
    )
    def test_training_stream_starts_where_a_fresh_one_would_be(
        self, start, pipeline
    ):
        # Order and augmentation are functions of the seed and the position:
        # a pipeline started after `start` examples yields what a fresh one
        # yields from then on.
        context = (
            tf.distribute.InputContext(
                num_input_pipelines=2, input_pipeline_id=pipeline
            )
            if pipeline is not None
            else None
        )

        def stream(start, count):
            dataset, _ = self.load(
                "train",
                image_size=8,
                preprocessing="cifar",  # Random crops and flips.
                training=True,
                seed=3,
                deterministic=True,
                input_context=context,
                start=start,
            )
            return as_arrays(dataset, limit=count)

        images, labels = stream(0, start + 40)
        resumed, resumed_labels = stream(start, 40)
        self.assertAllEqual(resumed, images[start:])
        self.assertAllEqual(resumed_labels, labels[start:])

    def test_every_epoch_is_a_new_permutation(self):
        dataset, info = self.load("train", training=True, seed=0)
        _, labels = as_arrays(dataset.batch(1437), limit=2)
        first, second = labels
        self.assertEqual(sorted(first), sorted(second))
        self.assertNotAllEqual(first, second)

    def test_start_is_for_training_pipelines(self):
        with self.assertRaisesRegex(ValueError, "start=3, training=False"):
            self.load("train", start=3)

    def test_input_context_shards_the_split(self):
        shards = []
        for index in range(2):
            context = tf.distribute.InputContext(
                num_input_pipelines=2, input_pipeline_id=index
            )
            dataset, info = self.load("test", input_context=context)
            self.assertEqual(info.num_examples, 360)
            images = as_arrays(dataset)[0]
            shards.append({image.tobytes() for image in images})
            self.assertLen(images, 180)
        full = {i.tobytes() for i in as_arrays(self.load("test")[0])[0]}
        self.assertEqual(shards[0] | shards[1], full)

    @parameterized.product(
        style=datasets.PREPROCESSING_STYLES, training=(False, True)
    )
    def test_every_preprocessing_style(self, style, training):
        dataset, _ = self.load(
            "train",
            image_size=16,
            preprocessing=style,
            training=training,
            seed=0,
        )
        images, _ = as_arrays(dataset, limit=8)
        self.assertEqual(images.shape, (8, 16, 16, 1))
        self.assertTrue(np.all(np.isfinite(images)))


class BadInputTest(TestCase):
    def test_unknown_dataset(self):
        with self.assertRaisesRegex(ValueError, "Unknown dataset 'mnist'"):
            datasets.load("mnist", "train")

    def test_unknown_preprocessing(self):
        with self.assertRaisesRegex(ValueError, "preprocessing='autoaugment'"):
            datasets.load("digits", "train", preprocessing="autoaugment")

    def test_bad_image_size(self):
        with self.assertRaisesRegex(ValueError, "image_size=0"):
            datasets.load(
                "digits", "train", image_size=0, data_dir=prepared_digits_dir()
            )

    def test_imagenet_without_its_manual_files(self):
        manual_dir = fresh_dir(self)
        with self.assertRaisesRegex(
            ValueError,
            "imagenet2012 is not prepared .* lacks ILSVRC2012_img_train.tar "
            "and ILSVRC2012_img_val.tar",
        ):
            datasets.load(
                "imagenet2012",
                "train",
                image_size=32,
                data_dir=fresh_dir(self),
                manual_dir=manual_dir,
            )


class MockedTfdsTest(TestCase):
    """cifar10 and imagenet2012 through tfds, with generated examples."""

    def test_cifar10(self):
        with tfds.testing.mock_data(num_examples=12):
            dataset, info = datasets.load(
                "cifar10", "train", training=True, seed=0
            )
            images, labels = as_arrays(dataset, limit=12)
        self.assertEqual(info.image_shape, (32, 32, 3))
        self.assertEqual(info.num_classes, 10)
        self.assertEqual(info.num_examples, 12)
        self.assertEqual(info.mean, (0.4914, 0.4822, 0.4465))
        self.assertEqual(images.shape, (12, 32, 32, 3))
        self.assertGreaterEqual(images.min(), 0.0)
        self.assertLessEqual(images.max(), 1.0)
        self.assertTrue(np.all((labels >= 0) & (labels < 10)))

    @parameterized.named_parameters(
        ("train", "train", True), ("validation", "validation", False)
    )
    def test_imagenet2012_from_jpeg_bytes(self, split, training):
        manual_dir = fresh_dir(self)
        for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"):
            open(os.path.join(manual_dir, name), "w").close()
        with tfds.testing.mock_data(num_examples=6):
            dataset, info = datasets.load(
                "imagenet2012",
                split,
                image_size=40,
                preprocessing="imagenet",
                training=training,
                seed=1,
                manual_dir=manual_dir,
            )
            images, labels = as_arrays(dataset, limit=6)
        self.assertEqual(info.num_classes, 1000)
        self.assertEqual(info.eval_split, "validation")
        self.assertEqual(images.shape, (6, 40, 40, 3))
        self.assertGreaterEqual(images.min(), 0.0)
        self.assertLessEqual(images.max(), 1.0)

    def test_imagenet2012_needs_image_size(self):
        manual_dir = fresh_dir(self)
        for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"):
            open(os.path.join(manual_dir, name), "w").close()
        with tfds.testing.mock_data(num_examples=2):
            with self.assertRaisesRegex(ValueError, "pass `image_size`"):
                datasets.load("imagenet2012", "train", manual_dir=manual_dir)


class FolderTest(TestCase):
    @parameterized.named_parameters(("train", "train"), ("test", "test"))
    def test_flat_layout_split_by_path_hash(self, split):
        root = fresh_dir(self)
        written = write_digit_folder(root, classes=(3, 1, 7), per_class=20)
        dataset, info = datasets.load(f"folder:{root}", split)
        self.assertEqual(info.class_names, ("digit1", "digit3", "digit7"))
        self.assertEqual(info.image_shape, (8, 8, 1))
        expected = {"train": set(), "test": set()}
        for path, image in written.items():
            relative = os.path.relpath(path, root).encode()
            in_split = "test" if zlib.crc32(relative) % 5 == 0 else "train"
            label = info.class_names.index(
                os.path.basename(os.path.dirname(path))
            )
            expected[in_split].add((label, image.tobytes()))
        images, labels = as_arrays(dataset)
        pixels = np.round(images * 255).astype(np.uint8)
        loaded = {(int(y), p.tobytes()) for p, y in zip(pixels, labels)}
        self.assertEqual(loaded, expected[split])
        self.assertEqual(info.num_examples, len(expected[split]))
        self.assertNotEmpty(expected["test"])

    def test_split_layout_and_statistics(self):
        root = fresh_dir(self)
        written = write_digit_folder(root, per_class=8, split_folders=True)
        dataset, info = datasets.load(f"folder:{root}", "train")
        self.assertEqual(info.num_examples, 18)  # 6 of 8 per class.
        _, test_info = datasets.load(f"folder:{root}", "test")
        self.assertEqual(test_info.num_examples, 6)
        train_pixels = (
            np.stack([i for p, i in written.items() if "/train/" in p]) / 255.0
        )
        self.assertAllClose(info.mean, [train_pixels.mean()], atol=1e-6)
        self.assertAllClose(info.std, [train_pixels.std()], atol=1e-6)

    def test_colour_images_give_three_channels(self):
        root = fresh_dir(self)
        write_digit_folder(root, classes=(0, 1), per_class=5, rgb=True)
        dataset, info = datasets.load(f"folder:{root}", "train", image_size=16)
        self.assertEqual(info.image_shape, (16, 16, 3))
        self.assertLen(info.mean, 3)
        self.assertEqual(as_arrays(dataset)[0].shape[1:], (16, 16, 3))

    def test_grayscale_folder_with_random_crops(self):
        # The CIFAR recipe's random crop needs a known channel count.
        root = fresh_dir(self)
        write_digit_folder(root, classes=(0, 1), per_class=5)
        dataset, info = datasets.load(
            f"folder:{root}",
            "train",
            image_size=16,
            preprocessing="cifar",
            training=True,
            seed=0,
        )
        self.assertEqual(info.image_shape, (16, 16, 1))
        images, _ = as_arrays(dataset, limit=4)
        self.assertEqual(images.shape, (4, 16, 16, 1))

    def test_missing_folder(self):
        missing = os.path.join(fresh_dir(self), "nowhere")
        with self.assertRaisesRegex(ValueError, f"{missing} does not exist"):
            datasets.load(f"folder:{missing}", "train")

    def test_file_instead_of_folder(self):
        path = os.path.join(fresh_dir(self), "labels.txt")
        open(path, "w").close()
        with self.assertRaisesRegex(ValueError, "is not a folder"):
            datasets.load(f"folder:{path}", "train")

    def test_empty_folder(self):
        root = fresh_dir(self)
        with self.assertRaisesRegex(ValueError, "holds no class folders"):
            datasets.load(f"folder:{root}", "train")

    def test_class_folder_without_images(self):
        root = fresh_dir(self)
        write_digit_folder(root, classes=(0,), per_class=3)
        os.makedirs(os.path.join(root, "empty_class"))
        with self.assertRaisesRegex(ValueError, "empty_class holds no images"):
            datasets.load(f"folder:{root}", "train")

    def test_corrupt_image_is_named(self):
        root = fresh_dir(self)
        write_digit_folder(root, classes=(0, 1), per_class=4)
        corrupt = os.path.join(root, "digit1", "broken.png")
        with open(corrupt, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n not really a png")
        with self.assertRaisesRegex(ValueError, f"Image {corrupt} cannot be"):
            datasets.load(f"folder:{root}", "train")

    def test_unreadable_image_is_named(self):
        # A folder named like an image: reading it fails, for root too.
        root = fresh_dir(self)
        write_digit_folder(root, classes=(0, 1), per_class=4)
        unreadable = os.path.join(root, "digit0", "folder.png")
        os.makedirs(unreadable)
        with self.assertRaisesRegex(ValueError, f"Image {unreadable} cannot"):
            datasets.load(f"folder:{root}", "train")
