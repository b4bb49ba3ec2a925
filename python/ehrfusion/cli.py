"""The `ehrfusion` and `ehrql` commands of the Python package: the engine's own
command line, run inside this interpreter."""

import sys


def main(argv=None):
    from . import _ehrfusion

    args = sys.argv if argv is None else ["ehrfusion", *argv]
    sys.exit(_ehrfusion.main([str(a) for a in args]))


if __name__ == "__main__":
    main()
