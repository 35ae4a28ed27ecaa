"""What `python -m irevnet_tf.analysis` gives each analysis, and flag types.

Each analysis module declares its own flags on its own `flags.FlagValues`
(`FLAGS`, defined only while that subcommand runs) and a `main(inputs)`
that runs it from them; `inputs` is the `Inputs` below, resolved by the
program from the flags every subcommand shares (`__main__`).
"""

import dataclasses
import math

from absl import flags

from irevnet_tf.analysis.data import DataSettings


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The flags every analysis takes, resolved.

    Attributes:
        model: the `IRevNetClassifier` analysed (`--model`).
        model_name: how the outputs name it: the last part of `--model`.
        settings: the images (`--dataset` and the data flags, completed
            from the training run's record), or None if neither names a
            dataset.
        split: `--split`, or None for the dataset's evaluation split.
        output_dir: `--output_dir`.
        batch_size: `--batch_size`.
        seed: `--seed`.
    """

    model: object
    model_name: str
    settings: DataSettings | None
    split: str | None
    output_dir: str
    batch_size: int
    seed: int

    def required_settings(self, analysis: str) -> DataSettings:
        """`settings`, for an analysis that cannot run on noise.

        Raises:
            ValueError: if no dataset was given or recorded.
        """
        if self.settings is None:
            raise ValueError(
                f"{analysis} needs images: pass --dataset (the model records "
                "no training dataset). Received: dataset=None"
            )
        return self.settings


class _IntegerListParser(flags.ListParser):
    """Comma-separated integers, such as `1,2,6`."""

    def __init__(self):
        super().__init__()
        self.syntactic_help = "comma-separated integers"

    def parse(self, argument):
        try:
            return [int(item) for item in super().parse(argument) if item]
        except (TypeError, ValueError):
            raise ValueError(
                f"expected comma-separated integers: {argument!r}"
            ) from None

    def flag_type(self):
        return "integer list"


def define_integer_list(
    name: str, default, help: str, flag_values: flags.FlagValues
) -> flags.FlagHolder:
    """A flag holding a list of integers, written `--name=1,2,6`."""
    return flags.DEFINE(
        _IntegerListParser(),
        name,
        default,
        help,
        flag_values=flag_values,
        serializer=flags.CsvListSerializer(","),
    )


class _IndexPairsParser(flags.ArgumentParser):
    """Pairs of indices, such as `0:5,3:9`."""

    syntactic_help = "pairs of indices, such as 0:5,3:9"

    def parse(self, argument):
        if not isinstance(argument, str):
            return argument
        try:
            pairs = []
            for item in argument.split(","):
                first, second = item.split(":")
                pairs.append((int(first), int(second)))
            return pairs
        except ValueError:
            raise ValueError(
                f"expected pairs of image indices such as 0:5,3:9: {argument!r}"
            ) from None

    def flag_type(self):
        return "index pairs"


def define_index_pairs(
    name: str, default, help: str, flag_values: flags.FlagValues
) -> flags.FlagHolder:
    """A flag holding `(i, j)` pairs of integers, written `--name=0:5,3:9`."""
    return flags.DEFINE(
        _IndexPairsParser(), name, default, help, flag_values=flag_values
    )


def define_positive_float(
    name: str, default: float, help: str, flag_values: flags.FlagValues
) -> flags.FlagHolder:
    """A float flag that must be finite and greater than 0."""
    holder = flags.DEFINE_float(name, default, help, flag_values=flag_values)
    flags.register_validator(
        holder,
        lambda value: value is None or (math.isfinite(value) and value > 0),
        message="expected a positive, finite number",
    )
    return holder
