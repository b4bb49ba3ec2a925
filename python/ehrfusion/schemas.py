"""Backend table schemas, read from the same JSON the engine compiles in."""

import functools
import json
import os

# The ehrfusion binary hands its built-in copies over before running a definition.
_provided = {}


def provide(name, text):
    _provided[name] = text


@functools.cache
def load(name):
    if name in _provided:
        return json.loads(_provided[name])
    try:
        from ehrfusion import _ehrfusion

        return json.loads(_ehrfusion.schema_json(name))
    except ImportError:
        pass
    # A source checkout: schemas/ sits two levels above this package.
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "schemas", f"{name}.json")
    with open(path) as f:
        return json.load(f)
