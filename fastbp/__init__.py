"""fastbp: compiled backpropagation for dense neural networks, scikit-learn's interface."""

# Import time: `import fastbp` loads what a plain fit uses (sklearn.base, its validation
# and LabelBinarizer, numba); modules only some features need (scipy.optimize for L-BFGS,
# sklearn.metrics for `scoring`, sklearn.model_selection for early stopping's split,
# sklearn.neural_network for to/from_sklearn) are imported where they are used. Each
# fresh process pays the import, joblib/loky workers included (issue 14).

from . import _compile_notice
from ._compile_notice import CompileWarning
from ._multilayer_perceptron import MLPClassifier, MLPRegressor
from ._warmup import warm_up
from .gradcheck import check_gradients
from .preprocessing import SoftClipScaler

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

# Kernels compile on their first call, never at import: installed here, the listener is
# in place before any of them can compile.
_compile_notice.install()
