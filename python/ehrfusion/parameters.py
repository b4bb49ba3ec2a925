"""User parameters and show().

Parameters are whatever follows `--` on the command line. As in ehrQL, a definition
sees them as `sys.argv[1:]` (so it may parse them with argparse itself), and
`get_parameter` reads one `--name value [value ...]` option from there.
"""

import argparse
import inspect
import sys

from .language import Error

class ParameterError(Error):
    """A parameter is missing, or its value does not convert to the requested type."""


def _bool(value):
    if value in ("true", "True", "1"):
        return True
    if value in ("false", "False", "0"):
        return False
    raise ParameterError(f"'{value}' is an invalid value for `bool` type parameter\n\nValid values are 1/True/true or 0/False/false.")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # a bad value is the definition's error, not an exit
        raise ParameterError(message)


def get_parameter(name, type=str, default=None):  # noqa: A002 (ehrQL's argument name)
    """The value of `--name` in the definition's arguments, converted with `type`.

    Given several values (`--sex male female`, or `--sex male --sex female`) it
    returns a list; given none it returns `default`, or fails when that is None."""
    program = sys.argv[0] if sys.argv else "definition"
    if type in (list, set, tuple):
        raise ParameterError(
            f"{program} error: {type} is not a valid type\n\nTo define a parameter as a sequence, define `get_parameter()` "
            f" with a type applicable to a single string argument, e.g.\n\n\tget_parameter(\"{name}\", type=str)\n\n"
            f"and pass multiple values to the generate-dataset command:\n\n\tgenerate-dataset {program} -- --{name} value1 value2"
        )
    convert = _bool if type is bool else type
    # allow_abbrev=False: `--foo` must not match `--foobar`; unknown options are
    # other parameters, left for their own get_parameter calls.
    parser = _Parser(allow_abbrev=False, add_help=False)
    parser.add_argument(f"--{name}", dest="values", type=convert, action="extend", nargs="+", default=[])
    known, _ = parser.parse_known_args(sys.argv[1:])
    if not known.values:
        if default is not None:
            return default
        raise ParameterError(
            f"{program} error: parameter `{name}` defined but no values found. Pass parameters in the "
            f"form `--{name} <value>` or provide a default value to `get_parameter()`\n\n"
            "Note that custom parameters MUST be provided last, and must follow a double-dash `--`."
        )
    return known.values[0] if len(known.values) == 1 else known.values


def show(element, *other_elements, label=None, head=None, tail=None):
    """ehrQL's debugging aid. It shows values only under ehrQL's `debug` command; while
    generating, as here, it notes its line on stderr and is otherwise ignored."""
    line = inspect.getframeinfo(sys._getframe(1)).lineno
    suffix = f" {label}" if label else ""
    print(f"Show line {line}:{suffix}", file=sys.stderr)
    print(" - show() ignored because we're not running in debug mode", file=sys.stderr)
