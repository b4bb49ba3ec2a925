"""The `ehrfusion`, `ehrql` and `cohortextractor` commands of the Python package:
the engine's own command line, run inside this interpreter."""

import sys


def main(argv=None):
    from . import _ehrfusion

    args = sys.argv if argv is None else ["ehrfusion", *argv]
    sys.exit(_ehrfusion.main([str(a) for a in args]))


def cohortextractor(argv=None):
    """`cohortextractor generate_cohort ...` is `ehrfusion cohortextractor generate_cohort ...`."""
    rest = sys.argv[1:] if argv is None else list(argv)
    main(["cohortextractor", *rest])


if __name__ == "__main__":
    main()
