"""fastbp: compiled backpropagation for dense neural networks, scikit-learn's interface."""

# Import time: `import fastbp` loads what a plain fit uses (sklearn.base, its validation
# and LabelBinarizer, numba); modules only some features need (scipy.optimize for L-BFGS,
# sklearn.metrics for `scoring`, sklearn.model_selection for early stopping's split,
# sklearn.neural_network for to/from_sklearn) are imported where they are used. Each
# fresh process pays the import, joblib/loky workers included (issue 14).
#
# Python's cyclic collector is off while these imports run (as it is on the existing
# heap while the kernels compile, see _gc_pause): they create about 170,000 long-lived
# objects (numba, scikit-learn, scipy), and the 430 collections they triggered walked
# them again and again, 0.15-0.2 s of a 1.3-1.4 s import on the development machine.
# Afterwards every object goes to the oldest generation at once (gc.freeze then
# gc.unfreeze: no walk; else the first young collections walk all 170,000, 0.09 s), unless
# the process froze objects itself; then the collector is switched back on, also when an
# import fails, and left off if it was off.

import gc as _gc

_collecting = _gc.isenabled()
_gc.disable()
try:
    from . import _compile_ahead, _compile_notice, _gc_pause

    # on a first run, the training kernel compiles in a helper process from here on,
    # while scikit-learn imports (_compile_ahead.start_early)
    _compile_ahead.start_early()
    from ._compile_notice import CompileWarning
    from ._multilayer_perceptron import MLPClassifier, MLPRegressor
    from ._warmup import warm_up
    from .gradcheck import check_gradients
    from .preprocessing import SoftClipScaler
finally:
    if _collecting:
        if _gc.get_freeze_count() == 0:
            _gc.freeze()
            _gc.unfreeze()
        _gc.enable()
    del _gc, _collecting

__version__ = "0.2.0.dev0"

__all__ = [
    "CompileWarning",
    "MLPClassifier",
    "MLPRegressor",
    "SoftClipScaler",
    "check_gradients",
    "warm_up",
    "__version__",
]

# Kernels compile on their first call, never at import (a first run's helper process
# compiles the float64 training kernel meanwhile, see _compile_ahead): installed here,
# the listeners are in place before any of them can compile or load.
_compile_notice.install()
_gc_pause.install()
