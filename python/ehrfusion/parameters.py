"""User parameters (`-- --name value` on the command line), permissions and show()."""

import sys

from .language import Error

_PARAMETERS = {}
_PERMISSIONS = set()
_MISSING = object()


def set_parameters(parameters):
    _PARAMETERS.clear()
    _PARAMETERS.update(parameters)


def parse_parameters(args):
    """`--name value` / `--name=value` pairs, as given after `--`."""
    params = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or arg == "--":
            raise Error(f"Unexpected argument {arg!r}: user parameters are given as --name value")
        if "=" in arg:
            name, value = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise Error(f"No value given for parameter {arg}")
            name, value = arg[2:], args[i + 1]
            i += 2
        params[name.replace("-", "_")] = value
    return params


def get_parameter(name, default=_MISSING):
    """A parameter passed after `--` on the command line (always a string)."""
    if name in _PARAMETERS:
        return _PARAMETERS[name]
    if default is not _MISSING:
        return default
    raise Error(f"Missing parameter '{name}': pass it after -- on the command line, e.g. -- --{name} VALUE")


def claim_permissions(*permissions):
    _PERMISSIONS.update(permissions)


def show(*elements, label=None, head=None, tail=None):
    """Print what a series or frame is (its query), for debugging a definition."""
    prefix = f"{label}: " if label else ""
    print(prefix + ", ".join(repr(e) for e in elements), file=sys.stderr)
