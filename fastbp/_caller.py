"""Where a warning should point: the user's line, not fastbp's or its libraries'."""

import sys

# Top-level packages whose frames a warning skips: fastbp itself and what calls into it
# or what it calls through (scikit-learn's fit wrappers, joblib workers, numba's
# compiler), so that the warning names the line in the user's code.
INTERNAL = ("fastbp", "numba", "llvmlite", "sklearn", "joblib", "contextlib")


def stacklevel():
    """``stacklevel`` for a ``warnings.warn`` made by the function calling this one: the
    first frame outside ``INTERNAL`` (1, the warning's own frame, if there is none:
    ``python -m fastbp ...``)."""
    frame, level = sys._getframe(2), 2
    while frame is not None:
        if frame.f_globals.get("__name__", "").split(".")[0] not in INTERNAL:
            return level
        frame, level = frame.f_back, level + 1
    return 1


def within_fastbp():
    """Whether a fastbp frame is on the stack of the function calling this one (above
    it): whether fastbp started what that function handles."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_globals.get("__name__", "").split(".")[0] == "fastbp":
            return True
        frame = frame.f_back
    return False
