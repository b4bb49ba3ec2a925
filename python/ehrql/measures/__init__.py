"""ehrQL's `ehrql.measures` module: the names definitions import from it."""

from ehrfusion.measures import INTERVAL, Measures, create_measures

__all__ = ["INTERVAL", "Measures", "create_measures"]
