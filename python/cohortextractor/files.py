"""CSV files that study definitions read columns from (`with_value_from_file`,
`which_exist_in_file`), each read once per run: studies often take a dozen columns
of one large file, at every index date."""

import csv
import gzip
import os

_READ = {}


def read_rows(f_path):
    """(header, [(line number, row), ...]) of a csv or csv.gz file; blank lines are
    skipped, as csv.DictReader skips them. OSError if it cannot be read."""
    status = os.stat(f_path)
    key = (os.path.abspath(f_path), status.st_mtime_ns, status.st_size)
    if key not in _READ:
        opener = gzip.open if str(f_path).endswith(".gz") else open
        with opener(f_path, "rt", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            rows = [(reader.line_num, row) for row in reader if row]
        _READ.clear()  # keep one file: the next column most likely reads the same
        _READ[key] = (header, rows)
    return _READ[key]


def column(header, rows, name):
    """The values of column `name` (None where a row is too short, as csv.DictReader
    gives)."""
    at = header.index(name)
    return [row[at] if at < len(row) else None for _, row in rows]
