"""fastbp: compiled backpropagation for dense neural networks, scikit-learn's interface."""

from ._multilayer_perceptron import MLPClassifier, MLPRegressor
from ._warmup import warm_up
from .gradcheck import check_gradients
from .preprocessing import SoftClipScaler

__version__ = "0.2.0.dev0"

__all__ = [
    "MLPClassifier",
    "MLPRegressor",
    "SoftClipScaler",
    "check_gradients",
    "warm_up",
    "__version__",
]
