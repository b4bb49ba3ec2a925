"""pytest plugin: run the reference ehrQL's `tests/spec` against ehrfusion.

Load it with `-p ehrfusion_spec_plugin` (this folder on PYTHONPATH) from the root of
a clone of the reference. It leaves the reference's own conftest files and their
`spec_test` fixture in charge of building datasets and checking results, and only
changes which engine they run on:

- every test that uses the `engine` fixture is parametrized with one engine,
  `ehrfusion`, and `spec_test` with its `execute` mode alone (the reference's other
  mode, `dump_sql`, checks SQL generation, which ehrfusion does not have);
- the `engine` fixture's value is an `EhrfusionEngine`;
- tests that do not use an engine (the suite's tests of its own doc tooling) are
  deselected.

At the end it prints one line with the counts.
"""

import pytest

from ehrfusion_engine import EhrfusionEngine, ehrfusion_bin


ENGINE_ID = "ehrfusion"


def _uses_engine(fixturenames):
    return "engine" in fixturenames


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc):
    # A test's own parametrize marks take precedence over a fixture's params, so
    # marking the test replaces the reference's four engines (and two modes).
    if not _uses_engine(metafunc.fixturenames):
        return
    metafunc.definition.add_marker(pytest.mark.parametrize("engine", [ENGINE_ID], indirect=True))
    if "spec_test" in metafunc.fixturenames:
        metafunc.definition.add_marker(pytest.mark.parametrize("spec_test", ["execute"], indirect=True))


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef, request):
    if fixturedef.argname != "engine":
        return None
    engine = EhrfusionEngine()
    fixturedef.cached_result = (engine, fixturedef.cache_key(request), None)
    return engine


def pytest_collection_modifyitems(session, config, items):
    keep, drop = [], []
    for item in items:
        (keep if _uses_engine(getattr(item, "fixturenames", ())) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_report_header(config):
    return f"ehrfusion binary: {ehrfusion_bin()}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    stats = terminalreporter.stats

    def count(key):
        return len([r for r in stats.get(key, []) if getattr(r, "when", "call") in ("call", "setup")])

    passed, failed, errors, skipped = count("passed"), count("failed"), count("error"), count("skipped")
    total = passed + failed + errors + skipped
    terminalreporter.write_line(
        f"ehrfusion vs reference spec: {passed} passed, {failed} failed, "
        f"{errors} errors, {skipped} skipped, of {total} execute cases"
    )
