"""absl flags generated from a settings dataclass: one declaration each.

    holders = define_flags(TrainConfig)      # --dataset, --batch_size, ...
    config = config_from_flags(TrainConfig, holders)

A field with `help` metadata (see `train.configs.base.setting`) becomes a
flag of its own name and default: a boolean flag for `bool` (so
`--nomemory_saving` works), an enum flag where the field lists `choices`,
else an integer, float or string flag after the field's type.
"""

import dataclasses
import sys
import types
import typing

from absl import flags

_DEFINERS = {
    bool: flags.DEFINE_boolean,
    int: flags.DEFINE_integer,
    float: flags.DEFINE_float,
    str: flags.DEFINE_string,
}


def define_flags(
    config_class, flag_values: flags.FlagValues = flags.FLAGS
) -> dict[str, flags.FlagHolder]:
    """Defines one flag per documented field of `config_class`.

    The flags count as the calling module's, as if it had defined them
    itself (so `--helpshort` lists them for the program's main module).

    Returns:
        The flag holders by field name.
    """
    module_name = sys._getframe(1).f_globals.get("__name__")
    if module_name == "__main__":
        module_name = sys.argv[0]  # What absl calls the main module.
    hints = typing.get_type_hints(config_class)
    holders = {}
    for field in dataclasses.fields(config_class):
        help_text = field.metadata.get("help")
        if help_text is None:
            continue
        kind = _value_type(hints[field.name])
        name, default = field.name, field.default
        choices = field.metadata.get("choices")
        if choices is not None:
            holder = flags.DEFINE_enum(
                name,
                default,
                list(choices),
                help_text,
                flag_values=flag_values,
                module_name=module_name,
            )
        elif kind in _DEFINERS:
            holder = _DEFINERS[kind](
                name,
                default,
                help_text,
                flag_values=flag_values,
                module_name=module_name,
            )
        else:
            raise TypeError(
                f"No flag type for field {name!r} of type {kind!r}."
            )
        holders[field.name] = holder
    return holders


def config_from_flags(config_class, holders: dict[str, flags.FlagHolder]):
    """An instance of `config_class` holding the parsed flags' values."""
    return config_class(
        **{name: holder.value for name, holder in holders.items()}
    )


def _value_type(hint):
    """`int` for `int` and `int | None`; the annotation's one real type."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is (
        typing.Union
    ):
        kinds = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(kinds) == 1:
            return kinds[0]
    return hint
