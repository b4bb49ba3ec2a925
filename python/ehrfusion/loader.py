"""Loading a dataset definition file into a query model document.

Mistakes are reported as one line naming the definition file and line, in the
words of the error, without a traceback into ehrfusion's own code (set
EHRFUSION_TRACEBACK=1 to see one).
"""

import json
import os
import runpy
import sys
import traceback

from .language import Dataset, _USER_TABLES
from .measures import Measures
from . import permissions
from .query_model import dumps

_PACKAGE_DIRS = tuple(
    os.path.dirname(os.path.abspath(m)) + os.sep
    for m in [__file__, *(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", pkg, "__init__.py") for pkg in ("ehrql", "cohortextractor"))]
)


class DefinitionError(Exception):
    """A one-line account of what is wrong with a definition and where."""


def _is_internal(filename):
    filename = os.path.abspath(filename)
    return filename.startswith(_PACKAGE_DIRS) or "<frozen" in filename or filename.startswith(os.path.dirname(runpy.__file__) + os.sep)


def _shown(filename, path):
    return path if os.path.abspath(filename) == os.path.abspath(path) else os.path.relpath(filename)


def _located(path, error):
    """'FILE, line N: message' for the innermost frame in the user's own code."""
    frames = traceback.extract_tb(error.__traceback__)
    user = [f for f in frames if not _is_internal(f.filename)]
    where = ""
    if isinstance(error, SyntaxError) and error.filename:
        where = f"{_shown(error.filename, path)}, line {error.lineno}: "
    elif user:
        f = user[-1]
        where = f"{_shown(f.filename, path)}, line {f.lineno}: "
    else:
        where = f"{path}: "
    message = str(error) if not isinstance(error, SyntaxError) else error.msg
    if isinstance(error, ImportError) and error.path and _is_internal(error.path):
        # Where our bundled modules live on this machine means nothing to the user.
        message = message.replace(f" ({error.path})", "")
    kind = type(error).__name__
    text = f"{where}{kind}: {message}" if message else f"{where}{kind}"
    return " ".join(text.split("\n"))


def run_definition(path, user_args=()):
    """Run a definition file as ehrQL does and return its namespace: as module
    `<stem>` (not `__main__`), with its own folder first on `sys.path` and the
    working directory (the repository root) importable, `sys.argv` set to the file
    and its user arguments, and `print()` going to stderr."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DefinitionError(f"{path}: no such file")
    _USER_TABLES.clear()
    permissions.clear_claimed()
    saved = sys.path.copy(), sys.argv, sys.stdout
    folder = os.path.dirname(os.path.abspath(path))
    sys.path[:0] = [folder] + ([os.getcwd()] if os.getcwd() not in sys.path and "" not in sys.path else [])
    sys.argv = [path, *user_args]
    sys.stdout = sys.stderr
    name = os.path.splitext(os.path.basename(path))[0]
    modules_before = set(sys.modules)
    try:
        return runpy.run_path(path, run_name=name)
    except DefinitionError:
        raise
    except BaseException as e:  # noqa: BLE001 (any failure of user code is reported)
        if isinstance(e, KeyboardInterrupt):
            raise
        if os.environ.get("EHRFUSION_TRACEBACK"):
            traceback.print_exc()
        raise DefinitionError(_located(path, e)) from None
    finally:
        sys.path[:], sys.argv, sys.stdout = saved
        _forget_study_modules(modules_before, [folder, os.getcwd()])


def _forget_study_modules(before, roots):
    """Drop the study's own helper modules (analysis/codelists.py, ...) imported by
    this run, so the next definition run in this process imports its own."""
    roots = tuple(os.path.join(os.path.abspath(r), "") for r in roots)
    for name in set(sys.modules) - before:
        file = getattr(sys.modules.get(name), "__file__", None) or ""
        if os.path.abspath(file).startswith(roots) and not _is_internal(file) and "site-packages" not in file:
            del sys.modules[name]


def _require(path, namespace, name, cls, kind):
    value = namespace.get(name)
    if value is None:
        raise DefinitionError(f"{path}: Did not find a variable called '{name}' in {kind} definition file")
    if not isinstance(value, cls):
        raise DefinitionError(f"{path}: '{name}' must be an instance of ehrql.{cls.__name__}, not {type(value).__name__}")
    return value


def load_dataset(path, user_args=()):
    """Run a definition file and return its `dataset`."""
    return _require(path, run_definition(path, user_args), "dataset", Dataset, "dataset")


def load_measures(path, user_args=()):
    """Run a definition file and return its `measures`."""
    measures = _require(path, run_definition(path, user_args), "measures", Measures, "measures")
    if len(measures) == 0:
        raise DefinitionError(f"{path}: No measures defined")
    return measures


def load_either(path, user_args=()):
    """A definition's `measures` if it has them (as ehrQL prefers them), else its `dataset`."""
    namespace = run_definition(path, user_args)
    if namespace.get("measures") is not None:
        measures = _require(path, namespace, "measures", Measures, "measures")
        if len(measures) == 0:
            raise DefinitionError(f"{path}: No measures defined")
        return measures
    if namespace.get("dataset") is not None:
        return _require(path, namespace, "dataset", Dataset, "dataset")
    raise DefinitionError(f"{path}: Did not find a variable called 'dataset' or 'measures' in the definition file")


_LOADERS = {"dataset": load_dataset, "measures": load_measures, "either": load_either}


def document(path, user_args=(), kind="dataset"):
    """The query model document of a definition file (its dataset, its measures, or
    with kind="either" whichever it has), as a dict, and its dummy data settings."""
    definition = _LOADERS[kind](path, user_args)
    try:
        doc = definition._to_document()
    except Exception as e:  # noqa: BLE001
        raise DefinitionError(f"{path}: {type(e).__name__}: {e}") from None
    doc_dummy = {k: v for k, v in definition.dummy_data_config.items() if v is not None and k != "additional_population_constraint"}
    # For the engine's permission check (dummy data: claimed; real data: granted).
    doc_dummy["required_permissions"] = permissions.required(definition)
    doc_dummy["claimed_permissions"] = permissions.claimed()
    return doc, doc_dummy


def document_json(path, user_args=(), schemas=None, kind="dataset"):
    """Entry point for the ehrfusion binary: the document as JSON text."""
    if schemas:
        from . import schemas as schema_module

        for name, text in schemas.items():
            schema_module.provide(name, text)
    doc, dummy = document(path, user_args, kind)
    return dumps(doc), json.dumps(dummy)
