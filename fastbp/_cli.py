"""Helpers shared by the command-line tools (``demo``, ``bench``)."""

import sys


def load_pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pyplot_missing():
    """True, after telling the user how to get it, if matplotlib cannot be imported."""
    try:
        load_pyplot()
    except ImportError:
        print("error: --plot needs matplotlib: pip install matplotlib", file=sys.stderr)
        return True
    return False
