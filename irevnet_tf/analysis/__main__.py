r"""The i-RevNet paper's analyses of a trained classifier, as a program.

    python -m irevnet_tf.analysis reconstruction --model runs/digits \
        --dataset digits --output_dir figures
    python -m irevnet_tf.analysis interpolation --model runs/digits \
        --dataset digits --output_dir figures
    python -m irevnet_tf.analysis separability --model runs/digits \
        --dataset digits --output_dir figures
    python -m irevnet_tf.analysis pca --model runs/digits \
        --dataset digits --output_dir figures
    python -m irevnet_tf.analysis spectrum --model runs/digits \
        --dataset digits --output_dir figures

Each writes OUTPUT_DIR/SUBCOMMAND.json (its numbers) and .png (its figure).
`--model` is a .keras file holding an IRevNetClassifier or a training
--model_dir; the images are prepared as the training run recorded in its
config.json (else: resized, not normalised), which flags override. Bad
input prints one line on stderr and exits with status 2.
"""

import argparse
import os
import sys

from absl import logging

from irevnet_tf.analysis import data as data_lib
from irevnet_tf.analysis import interpolation
from irevnet_tf.analysis import pca
from irevnet_tf.analysis import reconstruction
from irevnet_tf.analysis import separability
from irevnet_tf.analysis import spectrum
from irevnet_tf.models.loading import load_classifier

PROGRAM = "python -m irevnet_tf.analysis"


class _Parser(argparse.ArgumentParser):
    """argparse with the project's convention for bad input."""

    def error(self, message):
        _fail(f"{message} (see {self.prog} --help)")


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer: {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative integer: {text}"
        )
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer: {text!r}"
        ) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number: {text!r}"
        ) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number: {text}")
    return value


def _int_list(text: str) -> list:
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers: {text!r}"
        ) from None


def _pairs(text: str) -> list:
    try:
        pairs = []
        for item in text.split(","):
            first, second = item.split(":")
            pairs.append((int(first), int(second)))
        return pairs
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected pairs of image indices such as 0:5,3:9: {text!r}"
        ) from None


def _switch(parser, name: str, help_text: str) -> None:
    """absl-style `--name` / `--noname`, None when neither is given."""
    parser.add_argument(
        f"--{name}", dest=name, action="store_const", const=True, help=help_text
    )
    parser.add_argument(
        f"--no{name}", dest=name, action="store_const", const=False
    )


def build_parser() -> argparse.ArgumentParser:
    """The program's arguments: a subcommand and its flags."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--model",
        required=True,
        help="A .keras file holding an IRevNetClassifier, or a training "
        "--model_dir (its model.keras).",
    )
    common.add_argument(
        "--output_dir",
        required=True,
        help="Where SUBCOMMAND.json and SUBCOMMAND.png are written.",
    )
    common.add_argument(
        "--dataset",
        help="digits, cifar10, cifar100, imagenet2012 or folder:PATH. "
        "Default: the training run's (config.json beside the model); "
        "reconstruction and spectrum use uniform noise without one.",
    )
    common.add_argument(
        "--split",
        help="The split analysed (the test split of the probes). Default: "
        "the dataset's evaluation split (test; validation for ImageNet).",
    )
    common.add_argument(
        "--image_size",
        type=_positive_int,
        help="Image side, for models that take any size. Default: the model's.",
    )
    common.add_argument(
        "--preprocessing",
        help="Evaluation transform: resize, cifar or imagenet. Default: the "
        "training run's recipe, else resize.",
    )
    _switch(
        common,
        "normalize",
        "Normalise images per channel, (x - mean) / std. Default: as the "
        "training run did, else not.",
    )
    common.add_argument("--data_dir", help="TensorFlow Datasets directory.")
    common.add_argument(
        "--manual_dir", help="imagenet2012's manual download directory."
    )
    common.add_argument(
        "--batch_size",
        type=_positive_int,
        default=64,
        help="Images (or Jacobian products) per forward pass. Default: "
        "%(default)s.",
    )
    common.add_argument(
        "--seed",
        type=_int,
        default=0,
        help="Seeds noise, pairs, solvers. Default: %(default)s.",
    )

    parser = _Parser(
        prog=PROGRAM,
        description="The i-RevNet paper's analyses of a trained classifier.",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="SUBCOMMAND"
    )

    command = commands.add_parser(
        "reconstruction",
        parents=[common],
        help="||x - Phi^-1(Phi x)|| / ||x|| on noise and images.",
        description=reconstruction.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument(
        "--num_examples",
        type=_positive_int,
        help="Images of the split. Default: all.",
    )
    command.add_argument(
        "--num_noise",
        type=_non_negative_int,
        default=1000,
        help="Uniform-noise images; 0 for none. Default: %(default)s.",
    )

    command = commands.add_parser(
        "interpolation",
        aliases=["interpolate"],  # Its name until 0.1.0; deprecated.
        parents=[common],
        help="Images along Phi^-1((1-t) Phi x0 + t Phi x1).",
        description=interpolation.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument(
        "--num_pairs",
        type=_positive_int,
        default=4,
        help="Random pairs. Default: %(default)s.",
    )
    command.add_argument(
        "--steps",
        type=_positive_int,
        default=9,
        help="Values of t, >= 2. Default: %(default)s.",
    )
    command.add_argument(
        "--pairs",
        type=_pairs,
        help="Image indices in the split instead of random pairs: 0:5,3:9.",
    )

    for name, description in (
        ("separability", "Linear SVM and 1-NN accuracy against depth."),
        ("pca", "Linear SVM and 1-NN accuracy on d principal components."),
    ):
        command = commands.add_parser(name, parents=[common], help=description)
        command.add_argument(
            "--train_split",
            default="train",
            help="The split the probes are fitted on.",
        )
        command.add_argument(
            "--max_train_examples",
            type=_positive_int,
            help="Use the first N training images. Default: all.",
        )
        command.add_argument(
            "--max_test_examples",
            type=_positive_int,
            help="Use the first N test images. Default: all.",
        )
        command.add_argument(
            "--svm_c",
            type=_positive_float,
            default=1.0,
            help="Regularisation parameter C of the linear SVM. Default: "
            "%(default)s.",
        )
        if name == "separability":
            command.add_argument(
                "--depths",
                type=_int_list,
                help="Block depths (1-based), e.g. 1,2,6. Default: all.",
            )
            _switch(
                command,
                "pixel_baseline",
                "Also probe the raw pixels. Default: if an image has at "
                f"most {separability.PIXEL_BASELINE_MAX_DIM} values.",
            )
        else:
            command.add_argument(
                "--dimensions",
                type=_int_list,
                help="Values of d, e.g. 1,8,64. Default: 1, 2, 4, ... and "
                "the largest possible.",
            )

    command = commands.add_parser(
        "spectrum",
        parents=[common],
        help="Singular values of the Jacobian of Phi at images.",
        description=spectrum.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument(
        "--num_images",
        type=_positive_int,
        default=1,
        help="Images analysed. Default: %(default)s.",
    )
    command.add_argument(
        "--first_index",
        type=_non_negative_int,
        default=0,
        help="Index of the first image in the split. Default: %(default)s.",
    )
    command.add_argument(
        "--method",
        choices=spectrum.METHODS,
        default="auto",
        help="exact (full Jacobian), randomized (top k, matrix-free), or "
        f"auto: exact up to {spectrum.EXACT_MAX_DIM} pixel values.",
    )
    command.add_argument(
        "--top_k",
        type=_positive_int,
        default=100,
        help="Singular values the randomized method finds. Default: "
        "%(default)s.",
    )
    command.add_argument(
        "--oversampling",
        type=_non_negative_int,
        default=10,
        help="Extra vectors of the randomized method. Default: %(default)s.",
    )
    command.add_argument(
        "--max_iterations",
        type=_positive_int,
        default=30,
        help="Iterations of the randomized method at most. Default: "
        "%(default)s.",
    )
    command.add_argument(
        "--tolerance",
        type=_positive_float,
        default=1e-4,
        help="The randomized method stops when no value changes more "
        "(relative) in one iteration. Default: %(default)s.",
    )
    command.add_argument(
        "--energy_k",
        type=_int_list,
        default=[1, 10, 100],
        help="k at which the energy fraction is reported. Default: 1,10,100.",
    )
    return parser


def data_settings(args) -> data_lib.DataSettings | None:
    """The data flags, completed from the training run's record."""
    recorded = data_lib.recorded_settings(args.model)
    dataset = args.dataset or (recorded.dataset if recorded else None)
    if dataset is None:
        return None
    same = recorded is not None and dataset == recorded.dataset
    return data_lib.DataSettings(
        dataset=dataset,
        image_size=args.image_size,
        preprocessing=args.preprocessing
        or (recorded.preprocessing if same else "resize"),
        normalize=args.normalize
        if args.normalize is not None
        else bool(same and recorded.normalize),
        data_dir=args.data_dir,
        manual_dir=args.manual_dir,
    )


def run(args) -> str:
    """Runs the subcommand; returns a one-line summary."""
    model = load_classifier(args.model)
    settings = data_settings(args)
    if settings is None and args.command not in ("reconstruction", "spectrum"):
        raise ValueError(
            f"{args.command} needs images: pass --dataset (the model records "
            "no training dataset). Received: dataset=None"
        )
    common = dict(
        output_dir=args.output_dir,
        model_name=os.path.basename(os.path.normpath(args.model)),
    )
    if args.command == "reconstruction":
        record = reconstruction.run_reconstruction(
            model,
            settings=settings,
            split=args.split,
            num_examples=args.num_examples,
            num_noise=args.num_noise,
            batch_size=args.batch_size,
            seed=args.seed,
            **common,
        )
        parts = [
            f"{record[key]['errors']['mean']:.3g} on "
            f"{record[key]['errors']['examples']} {name}"
            for key, name in (
                ("noise", "uniform-noise images"),
                ("data", f"{settings.dataset} images" if settings else ""),
            )
            if key in record
        ]
        summary = "Mean relative reconstruction error: " + ", ".join(parts)
    elif args.command in ("interpolation", "interpolate"):
        record = interpolation.run_interpolation(
            model,
            settings,
            split=args.split,
            num_pairs=args.num_pairs,
            steps=args.steps,
            pairs=args.pairs,
            seed=args.seed,
            **common,
        )
        worst = max(max(p["endpoint_errors"]) for p in record["pairs"])
        summary = (
            f"Interpolated {len(record['pairs'])} pairs in {args.steps} "
            f"steps; endpoint reconstruction error at most {worst:.3g}"
        )
    elif args.command == "separability":
        record = separability.run_separability(
            model,
            settings,
            test_split=args.split,
            train_split=args.train_split,
            max_train_examples=args.max_train_examples,
            max_test_examples=args.max_test_examples,
            depths=args.depths,
            batch_size=args.batch_size,
            svm_c=args.svm_c,
            pixel_baseline=args.pixel_baseline,
            seed=args.seed,
            **common,
        )
        summary = (
            f"Test accuracy from depth {record['depths'][0]} to "
            f"{record['depths'][-1]}: linear SVM "
            f"{record['svm_accuracy'][0]:.3f} -> "
            f"{record['svm_accuracy'][-1]:.3f}, 1-NN "
            f"{record['nearest_neighbour_accuracy'][0]:.3f} -> "
            f"{record['nearest_neighbour_accuracy'][-1]:.3f}"
        )
    elif args.command == "pca":
        record = pca.run_pca(
            model,
            settings,
            test_split=args.split,
            train_split=args.train_split,
            max_train_examples=args.max_train_examples,
            max_test_examples=args.max_test_examples,
            dimensions=args.dimensions,
            batch_size=args.batch_size,
            svm_c=args.svm_c,
            seed=args.seed,
            **common,
        )
        summary = "Test accuracy (linear SVM / 1-NN) on d components: " + (
            ", ".join(
                f"d={d} {s:.3f}/{n:.3f}"
                for d, s, n in zip(
                    record["dimensions"],
                    record["svm_accuracy"],
                    record["nearest_neighbour_accuracy"],
                )
            )
        )
    else:
        record = spectrum.run_spectrum(
            model,
            settings=settings,
            split=args.split,
            num_images=args.num_images,
            first_index=args.first_index,
            method=args.method,
            top_k=args.top_k,
            oversampling=args.oversampling,
            max_iterations=args.max_iterations,
            tolerance=args.tolerance,
            energy_k=args.energy_k,
            batch_size=args.batch_size,
            seed=args.seed,
            **common,
        )
        summary = "; ".join(
            f"{image['image']}: {len(image['singular_values'])} singular "
            f"values ({image['method']}), s_1 = "
            f"{image['singular_values'][0]:.4g}, energy fraction "
            + ", ".join(
                f"k={k} {v:.3f}" for k, v in image["energy_fraction_at"].items()
            )
            for image in record["images"]
        )
    return summary


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    # TensorFlow Datasets logs every pipeline it builds.
    logging.set_verbosity(logging.ERROR)
    try:
        summary = run(args)
    except ValueError as error:
        _fail(str(error))
    print(summary)
    name = "interpolation" if args.command == "interpolate" else args.command
    print(f"Wrote {os.path.join(args.output_dir, name)}.json and .png")


def _fail(message: str) -> None:
    # One line, no traceback, exit status 2 (the project's CLI convention).
    message = " ".join(message.split())
    print(f"{PROGRAM}: error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
