r"""The i-RevNet paper's analyses of a trained classifier.

    python -m irevnet_tf.analysis SUBCOMMAND --model=PATH --output_dir=DIR \
        [--dataset=NAME] [flags]

For example:

    python -m irevnet_tf.analysis separability --model=runs/digits \
        --output_dir=figures

Each subcommand writes OUTPUT_DIR/SUBCOMMAND.json (its numbers) and
OUTPUT_DIR/SUBCOMMAND.png (its figure); `SUBCOMMAND --help` lists its
flags. `--model` is a .keras file holding an IRevNetClassifier or a
training --model_dir; the images are prepared as the training run recorded
in its config.json (else: resized), which flags override. Images are
pixels in [0, 1]: a model trained on normalised images standardises them
itself.
Bad input prints one line on stderr and exits with status 2, before
anything is computed or written.
"""

import functools
import os
import sys

from absl import flags
from absl import logging

from irevnet_tf import cli
from irevnet_tf import files
from irevnet_tf.analysis import command_line
from irevnet_tf.analysis import data as data_lib
from irevnet_tf.analysis import interpolation
from irevnet_tf.analysis import pca
from irevnet_tf.analysis import reconstruction
from irevnet_tf.analysis import separability
from irevnet_tf.analysis import spectrum
from irevnet_tf.models.loading import load_classifier

PROGRAM = "python -m irevnet_tf.analysis"

# The subcommands: each is the module of `irevnet_tf.analysis` of the same
# name, which declares its summary (its docstring's first line), its own
# flags (`FLAGS`) and `main(inputs)`, which runs it from them and returns a
# one-line summary of the result.
ANALYSES = {
    module.__name__.rpartition(".")[2]: module
    for module in (reconstruction, interpolation, separability, pca, spectrum)
}
# Former subcommand names, which still work with a warning.
DEPRECATED_NAMES = {"interpolate": "interpolation"}
_HELP_ARGUMENTS = ("-h", "--help", "-help", "--helpshort", "-helpshort", "-?")

# The flags of every subcommand. Like each analysis's own, they are defined
# on absl's FLAGS only while a subcommand runs (`run`).
COMMON_FLAGS = flags.FlagValues()
_MODEL = flags.DEFINE_string(
    "model",
    None,
    "A .keras file holding an IRevNetClassifier, or a training --model_dir "
    "(its model.keras). Required.",
    required=True,
    flag_values=COMMON_FLAGS,
)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir",
    None,
    "Where SUBCOMMAND.json and SUBCOMMAND.png are written. Required.",
    required=True,
    flag_values=COMMON_FLAGS,
)
_DATASET = flags.DEFINE_string(
    "dataset",
    None,
    "digits, cifar10, cifar100, imagenet2012 or folder:PATH. Default: the "
    "training run's (config.json beside the model); reconstruction and "
    "spectrum use uniform noise without one.",
    flag_values=COMMON_FLAGS,
)
_SPLIT = flags.DEFINE_string(
    "split",
    None,
    "The split analysed (the test split of the probes). Default: the "
    "dataset's evaluation split (test; validation for ImageNet).",
    flag_values=COMMON_FLAGS,
)
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size",
    None,
    "Image side, for models that take any size. Default: the model's.",
    lower_bound=1,
    flag_values=COMMON_FLAGS,
)
_PREPROCESSING = flags.DEFINE_string(
    "preprocessing",
    None,
    "Evaluation transform: resize, cifar or imagenet. Default: the training "
    "run's recipe, else resize.",
    flag_values=COMMON_FLAGS,
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "TensorFlow Datasets directory.", flag_values=COMMON_FLAGS
)
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir",
    None,
    "imagenet2012's manual download directory.",
    flag_values=COMMON_FLAGS,
)
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size",
    64,
    "Images (or Jacobian products) per forward pass.",
    lower_bound=1,
    flag_values=COMMON_FLAGS,
)
_SEED = flags.DEFINE_integer(
    "seed", 0, "Seeds noise, pairs, solvers.", flag_values=COMMON_FLAGS
)


def summary(name: str) -> str:
    """The one-line summary of the subcommand `name`."""
    return ANALYSES[name].__doc__.strip().splitlines()[0]


def data_settings() -> data_lib.DataSettings | None:
    """The data flags, completed from the training run's record."""
    recorded = data_lib.recorded_settings(_MODEL.value)
    dataset = _DATASET.value or (recorded.dataset if recorded else None)
    if dataset is None:
        return None
    same = recorded is not None and dataset == recorded.dataset
    return data_lib.DataSettings(
        dataset=dataset,
        image_size=_IMAGE_SIZE.value,
        preprocessing=_PREPROCESSING.value
        or (recorded.preprocessing if same else "resize"),
        data_dir=_DATA_DIR.value,
        manual_dir=_MANUAL_DIR.value,
    )


def main(name: str) -> None:
    """Runs the subcommand `name` once the flags are parsed."""
    analysis = ANALYSES[name]
    # absl parsed these flags as part of its FLAGS; their own FlagValues,
    # which the analyses read, learn it here.
    for flag_values in (COMMON_FLAGS, analysis.FLAGS):
        flag_values.mark_as_parsed()
    # TensorFlow Datasets logs every pipeline it builds.
    logging.set_verbosity(logging.ERROR)
    try:
        files.check_writable_directory(_OUTPUT_DIR.value, "output_dir")
        inputs = command_line.Inputs(
            model=load_classifier(_MODEL.value),
            model_name=os.path.basename(os.path.normpath(_MODEL.value)),
            settings=data_settings(),
            split=_SPLIT.value,
            output_dir=_OUTPUT_DIR.value,
            batch_size=_BATCH_SIZE.value,
            seed=_SEED.value,
        )
        result = analysis.main(inputs)
    except ValueError as error:
        raise cli.UsageError(str(error)) from None
    print(result)
    print(f"Wrote {os.path.join(_OUTPUT_DIR.value, name)}.json and .png")


def run() -> None:
    """Runs the program on `sys.argv`; the console script's entry point."""
    arguments = sys.argv[1:]
    names = ", ".join(ANALYSES)
    if not arguments:
        cli.fail(PROGRAM, f"Missing SUBCOMMAND: one of {names} (see --help).")
    if arguments[0] in _HELP_ARGUMENTS:
        print(usage())
        sys.exit(0)
    name = DEPRECATED_NAMES.get(arguments[0], arguments[0])
    if name not in ANALYSES:
        cli.fail(
            PROGRAM,
            f"The first argument must be a SUBCOMMAND: one of {names} (see "
            f"--help). Received: {arguments[0]}",
        )
    if name != arguments[0]:
        print(
            f"{PROGRAM}: warning: the subcommand {arguments[0]} is "
            f"deprecated; use {name}.",
            file=sys.stderr,
        )
    analysis = ANALYSES[name]
    if any(argument in _HELP_ARGUMENTS for argument in arguments[1:]):
        print(usage(name))
        sys.exit(0)
    # Analyses share flag names (--train_split, ...): only this one's flags
    # are defined, for this run. absl parses sys.argv, without the
    # subcommand.
    program_argv = sys.argv
    sys.argv = [program_argv[0], *arguments[1:]]
    for flag_values in (COMMON_FLAGS, analysis.FLAGS):
        flag_values.unparse_flags()
        flags.FLAGS.append_flag_values(flag_values)
    try:
        cli.run(functools.partial(main, name), PROGRAM)
    finally:
        sys.argv = program_argv
        for flag_values in (COMMON_FLAGS, analysis.FLAGS):
            flags.FLAGS.remove_flag_values(flag_values)


def usage(name: str | None = None) -> str:
    """The help of the program, or of its subcommand `name`."""
    if name is None:
        width = max(len(n) for n in ANALYSES)
        return "\n".join(
            [
                __doc__.strip(),
                "",
                "Subcommands:",
                *(f"  {n.ljust(width)}  {summary(n)}" for n in ANALYSES),
                "",
                "Flags of every subcommand:",
                describe_flags(COMMON_FLAGS),
            ]
        )
    return "\n".join(
        [
            f"Usage: {PROGRAM} {name} --model=PATH --output_dir=DIR [flags]",
            "",
            ANALYSES[name].__doc__.strip(),
            "",
            f"Flags of {name}:",
            describe_flags(ANALYSES[name].FLAGS),
            "",
            "Flags of every subcommand:",
            describe_flags(COMMON_FLAGS),
        ]
    )


def describe_flags(flag_values: flags.FlagValues) -> str:
    """absl's help text of each flag, in the order they are defined."""
    entries = []
    for name in flag_values:
        flag = flag_values[name]
        if name != flag.name:  # A short name.
            continue
        switch = "[no]" if flag.boolean else ""
        lines = [
            flags.text_wrap(
                f"--{switch}{flag.name}: {flag.help}",
                indent="    ",
                firstline_indent="  ",
            )
        ]
        if flag.default_as_str:
            lines.append(
                flags.text_wrap(
                    f"(default: {flag.default_as_str})", indent="    "
                )
            )
        if flag.parser.syntactic_help:
            lines.append(
                flags.text_wrap(
                    f"({flag.parser.syntactic_help})", indent="    "
                )
            )
        entries.append("\n".join(lines))
    return "\n".join(entries)


if __name__ == "__main__":
    run()
