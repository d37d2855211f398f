"""Input scaling for networks trained on real tables, where a few extreme rows are common."""

from numbers import Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import FLOAT_DTYPES, check_is_fitted, validate_data

__all__ = ["SoftClipScaler"]


class SoftClipScaler(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Scale features robustly, then squash outliers smoothly into ``(-clip, clip)``.

    Per feature, ``z = (x - median) / IQR`` (as :class:`sklearn.preprocessing.RobustScaler`
    does with its defaults), then ``z / sqrt(1 + z**2 / clip**2)``. Typical values pass
    almost unchanged (``|z| = 1`` shrinks by about 5% with ``clip=3``) while a data-entry
    error or a handful of extreme rows land just inside ``+-clip`` instead of saturating
    the network's units or dominating the squared loss.

    The name says what it adds to ``RobustScaler``: the median and IQR are not moved by
    outliers, but ``RobustScaler`` passes the outliers themselves through unbounded; this
    scaler *clips* them, *softly* (smooth, strictly increasing and so invertible inside
    ``(-clip, clip)``, unlike ``np.clip``).

    Parameters
    ----------
    clip : float, default=3.0
        Bound of the output: every finite input lands in ``[-clip, clip]``, strictly
        inside unless its robust z-score ``(x - median) / IQR`` is beyond about
        ``1e8 * clip`` in float64 or ``4e3 * clip`` in float32, where rounding reaches
        the bound.

    copy : bool, default=True
        If False, transform and inverse_transform scale a float NumPy array in place.

    Attributes
    ----------
    center_ : ndarray of shape (n_features,)
        Median of each feature in the training data, NaN ignored.

    scale_ : ndarray of shape (n_features,)
        Interquartile range of each feature, NaN ignored; 1 for a constant feature (IQR
        below ``10 * eps``), as in ``RobustScaler``.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string feature names.

    See Also
    --------
    sklearn.preprocessing.RobustScaler : The same centring and scaling, without the clip.
    sklearn.preprocessing.QuantileTransformer : Rank-based, also bounds the outliers, but
        distorts distances between typical values.

    Notes
    -----
    NaN is ignored when fitting and kept by transform, as in ``RobustScaler``. A float32
    X is scaled in float32. Sparse X is rejected: centring on the median would make it
    dense; use ``X.toarray()`` or, to keep it sparse,
    ``sklearn.preprocessing.MaxAbsScaler`` or ``RobustScaler(with_centering=False)``.

    To scale a regression target, prefer a linear scaler (``RobustScaler``) inside
    :class:`sklearn.compose.TransformedTargetRegressor`: a regressor's predictions are not
    bounded by ``clip``, and values at or beyond ``clip`` have no finite inverse.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp.preprocessing import SoftClipScaler
    >>> X = np.array([[1.0], [2.0], [3.0], [4.0], [1000.0]])
    >>> SoftClipScaler().fit_transform(X).ravel().round(3)
    array([-0.949, -0.493,  0.   ,  0.493,  3.   ])
    """

    _parameter_constraints: dict = {
        "clip": [Interval(Real, 0, None, closed="neither")],
        "copy": ["boolean"],
    }

    def __init__(self, clip=3.0, copy=True):
        self.clip = clip
        self.copy = copy

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Compute each feature's median and interquartile range, ignoring NaN.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; NaN allowed, sparse rejected.

        y : None
            Ignored.

        Returns
        -------
        self : object
            Fitted scaler.
        """
        _reject_sparse(X)
        X = validate_data(self, X, dtype=FLOAT_DTYPES, ensure_all_finite="allow-nan")
        self.center_ = np.nanmedian(X, axis=0)
        # quantiles given in X's dtype: a float64 q would make NumPy answer in float64
        q1, q3 = np.nanpercentile(X, np.array([25, 75], dtype=X.dtype), axis=0)
        scale = q3 - q1
        # same threshold as RobustScaler: a constant feature is centred, not blown up
        scale[scale < 10 * np.finfo(scale.dtype).eps] = 1.0
        self.scale_ = scale
        return self

    def transform(self, X):
        """Centre, scale and softly clip X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to scale; NaN is kept.

        Returns
        -------
        X_tr : ndarray of shape (n_samples, n_features)
            Values in ``[-clip, clip]``, in X's float dtype.
        """
        check_is_fitted(self)
        _reject_sparse(X)
        X = validate_data(
            self, X, reset=False, copy=self.copy, dtype=FLOAT_DTYPES,
            force_writeable=True, ensure_all_finite="allow-nan",
        )
        center, scale = self._in_dtype(X.dtype)
        # a float32 difference of two values near the dtype's limit may overflow to inf:
        # the clip below sends it to +-max, which lands on +-clip, the right answer
        with np.errstate(over="ignore"):
            X -= center
            X /= scale
            X /= X.dtype.type(self.clip)
        limit = np.finfo(X.dtype).max
        np.clip(X, -limit, limit, out=X)
        # z / hypot(1, z) rather than z / sqrt(1 + z**2): z**2 overflows for |z| > 1e19
        # in float32, which would send the largest outliers to 0 instead of to +-clip
        X /= np.hypot(X.dtype.type(1), X)
        X *= self.clip
        return X

    def inverse_transform(self, X):
        """Map scaled values back to the original units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Scaled data, each value in ``[-clip, clip]``; NaN is kept. ``+-clip`` itself
            maps to ``+-inf`` (the squash's limit): the original value is lost to rounding.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            Data in the original units, in X's float dtype.
        """
        check_is_fitted(self)
        _reject_sparse(X)
        X = validate_data(
            self, X, reset=False, copy=self.copy, dtype=FLOAT_DTYPES,
            force_writeable=True, ensure_all_finite="allow-nan",
        )
        outside = np.abs(X) > self.clip
        if outside.any():
            value = float(X[outside][0])
            raise ValueError(
                f"SoftClipScaler.inverse_transform takes values in [-clip, clip] = "
                f"[-{self.clip}, {self.clip}] (transform's range); got {value!r}. To "
                f"scale a regression target, use a linear scaler such as RobustScaler."
            )
        center, scale = self._in_dtype(X.dtype)
        clip = X.dtype.type(self.clip)
        # +-clip -> +-inf (documented above); near it, overflow to inf is the right answer
        with np.errstate(divide="ignore", over="ignore"):
            X /= clip
            X /= np.sqrt((1 - X) * (1 + X))  # 1 - X is exact near +-1; 1 - X * X is not
            X *= clip
            X *= scale
        X += center
        return X

    def _in_dtype(self, dtype):
        # a float64 fit applied to float32 data must not promote the result to float64
        return self.center_.astype(dtype, copy=False), self.scale_.astype(dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def _reject_sparse(X):
    if sp.issparse(X):
        raise TypeError(
            "SoftClipScaler does not accept sparse X: centring on the median would make it "
            "dense. Pass X.toarray(), or keep it sparse with "
            "sklearn.preprocessing.MaxAbsScaler or RobustScaler(with_centering=False)."
        )
