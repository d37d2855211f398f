"""The docstrings of the estimators: the parameters and attributes they share, written
once and rendered into each (the estimator-specific parts stay in their classes)."""

from string import Template

# $score: what the estimator's ``score`` computes
_SHARED_PARAMETERS = Template("""\
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        Number of units in each hidden layer.
    activation : str or list of str, default='relu'
        Activation of the hidden layers, one name for all or one per hidden layer:
        'identity', 'logistic', 'tanh', 'relu', 'leaky_relu' (slope 0.01 for z < 0),
        'elu' (alpha 1.0: ``exp(z) - 1`` for z < 0), 'softplus' (``log(1 + exp(z))``)
        or 'gelu' (exact: ``z * Phi(z)``, Phi the standard normal CDF).
    solver : {'lbfgs', 'sgd', 'adam', 'adamw', 'rmsprop', 'adagrad'}, default='adam'
        Weight optimizer. 'lbfgs' runs ``scipy.optimize.minimize(method="L-BFGS-B")``
        on the compiled full-batch loss and gradient. 'adamw' is Adam with decoupled
        weight decay (``weight_decay``), 'rmsprop' divides by a running root mean square
        of the gradients (decay ``rho``), 'adagrad' by the root of their running sum;
        all three use ``epsilon`` in the denominator.
    alpha : float, default=0.0001
        Strength of the L2 penalty (divided by the sum of sample weights).
    batch_size : int or 'auto', default='auto'
        Minibatch size of the stochastic solvers; 'auto' is ``min(200, n_samples)``.
    learning_rate : str, default='constant'
        Step-size schedule of every stochastic solver (scikit-learn applies its three to
        'sgd' only; with 'constant', the default, nothing differs):

        - 'constant': ``learning_rate_init`` throughout;
        - 'invscaling': ``learning_rate_init / (t_ + 1) ** power_t`` after each epoch;
        - 'adaptive': divided by 5 each time the stopping rule would stop, until
          below 1e-6;
        - 'step': ``learning_rate_init * lr_decay ** (epoch // lr_period)``;
        - 'exponential': ``learning_rate_init * lr_decay ** (epoch / lr_period)``;
        - 'cosine': ``learning_rate_init * (1 + cos(pi * (epoch % lr_period) /
          lr_period)) / 2`` (annealing with warm restarts every ``lr_period`` epochs).

        ``epoch`` counts the epochs since the optimizer started (0 for the first).
    learning_rate_init : float, default=0.001
        Initial step size of the stochastic solvers.
    power_t : float, default=0.5
        Exponent of the 'invscaling' schedule.
    max_iter : int, default=200
        Maximum number of epochs (stochastic solvers) or iterations (lbfgs).
    shuffle : bool, default=True
        Shuffle the samples every epoch (stochastic solvers).
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the shuffling and the early-stopping split.
    tol : float, default=1e-4
        Improvement threshold of the stopping rules (and lbfgs' gradient tolerance).
    verbose : bool, default=False
        Print the loss of every epoch.
    warm_start : bool, default=False
        Continue from the previous solution.
    momentum : float, default=0.9
        Momentum of 'sgd'.
    nesterovs_momentum : bool, default=True
        Nesterov's momentum for 'sgd'.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified for the classifier)
        and stop when the validation score (``scoring``; by default $score) stops
        improving; the best weights are kept.
    validation_fraction : float, default=0.1
        Held-out fraction for early stopping.
    beta_1 : float, default=0.9
        Decay rate of Adam's (and AdamW's) first-moment estimate, in [0, 1).
    beta_2 : float, default=0.999
        Decay rate of Adam's (and AdamW's) second-moment estimate, in [0, 1).
    epsilon : float, default=1e-8
        Adam's denominator offset.
    n_iter_no_change : int, default=10
        Epochs without ``tol`` improvement before stopping.
    max_fun : int, default=15000
        Maximum number of loss evaluations of 'lbfgs'.
    dropout : float or list of float, default=0.0
        Inverted dropout on the hidden layers, one rate in [0, 1) for all or one per
        hidden layer: in training each hidden unit is zeroed with this probability and
        the kept ones are scaled by ``1 / (1 - rate)``; prediction uses the full network.
        The masks are a hash of (seed, step, layer, row, unit), the seed drawn from
        ``random_state``: reproducible and independent of the thread count. Stochastic
        solvers only.
    l1 : float, default=0.0
        Strength of an L1 penalty ``l1 * sum |w|`` on the weights (not the biases),
        divided by the sum of sample weights like ``alpha``'s. Its gradient is
        ``l1 * sign(w)``: weights shrink towards zero and hover within about a step size
        of it (a subgradient method, as in Keras or PyTorch, not a proximal one).
    max_grad_norm : float or None, default=None
        Clip the global gradient norm (all weights and biases) of every minibatch step
        to this value: a longer gradient is scaled down to this length. Stochastic
        solvers only.
    weight_decay : float, default=0.01
        Decoupled weight decay of 'adamw': each step first multiplies the weights (not
        the biases) by ``1 - learning_rate * weight_decay``.
    rho : float, default=0.9
        Decay rate of the mean square of 'rmsprop'.
    lr_decay : float, default=0.5
        Factor of the 'step' and 'exponential' schedules per ``lr_period`` epochs.
    lr_period : int or None, default=None
        Period in epochs of the 'step', 'exponential' and 'cosine' schedules; None
        means 10 for 'step' and 'exponential' and ``max_iter`` for 'cosine'.
    init : str, default='sklearn'
        Initial weights: 'sklearn', 'glorot_uniform', 'glorot_normal', 'he_uniform' or
        'he_normal'. 'sklearn' is scikit-learn's scheme and draw order (uniform in
        ``+-sqrt(f / (fan_in + fan_out))``, f = 2 for logistic units, else 6, biases
        too). The others draw the weights from Glorot's (``fan_in + fan_out``) or He's
        (``fan_in``) uniform or normal distribution and set the biases to 0.
    n_threads : int or None, default=None
        Threads of fit and predict. Networks whose minibatch step is large (batch rows x
        parameters >= 2**20, and at least 64 rows) train data-parallel: each minibatch
        is cut into up to 8 blocks of rows that run on these threads, their gradients
        summed in a fixed order; large predicts, validation losses and L-BFGS passes run
        their 256-row chunks in parallel. None or -1: the usable cores, no more than
        BLAS's thread count (which follows OMP_NUM_THREADS and the like, a joblib or
        Dask worker's share, and an outer threadpoolctl limit); an int: that many
        (numba's pool, NUMBA_NUM_THREADS, bounds it). BLAS runs on one thread during the call
        (restored afterwards). Results are bit-identical for any thread count: how a
        minibatch is cut depends on the batch size and the network only.
    scoring : str, callable or None, default=None
        What early stopping follows on the validation set, and what
        ``validation_scores_`` record (higher is better): None, the estimator's
        ``score`` ($score; scikit-learn's behaviour); 'loss', the negative validation
        loss (the training loss without penalties or dropout), as HistGradientBoosting
        does; or any scikit-learn scorer name or callable (e.g. 'neg_log_loss',
        'roc_auc'). Used only with a validation set (``early_stopping=True`` or
        ``fit(..., X_val=, y_val=)``).
""")

# $out_activation: the output activations of this estimator
_SHARED_ATTRIBUTES = Template("""\
    loss_ : float
        The training loss of the last epoch (stochastic solvers: the mean over its
        minibatches, penalties included) or of the final weights (lbfgs).
    best_loss_ : float or None
        The lowest ``loss_`` seen; None with early stopping (it follows the validation
        score instead) and for lbfgs.
    loss_curve_ : list of float
        ``loss_`` after each epoch (stochastic solvers only).
    validation_scores_ : list of float or None
        The validation score after each epoch (see ``scoring``), when there is a
        validation set (``early_stopping=True`` or ``X_val``); else None.
    validation_loss_curve_ : list of float
        The loss (no penalty, no dropout) on the validation set after every epoch
        (lbfgs: every iteration); only when there is a validation set.
    best_validation_score_ : float or None
        The best of ``validation_scores_`` (None without a validation set).
    t_ : int
        The number of training samples seen by the solver (epochs x rows).
    coefs_ : list of ndarray of shape (n_layers_ - 1,)
        ``coefs_[i]``, of shape (fan_in, fan_out), holds the weights from layer i to
        layer i + 1: views into the network's one flat parameter vector (writing into
        them changes the model; assigning new arrays is allowed too).
    intercepts_ : list of ndarray of shape (n_layers_ - 1,)
        ``intercepts_[i]``, of shape (fan_out,), the biases of layer i + 1 (views into
        the same vector).
    n_features_in_ : int
        The number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The names of the features seen during fit, when X had string column names.
    n_iter_ : int
        The number of epochs (stochastic solvers) or iterations (lbfgs) run by the last
        fit.
    n_layers_ : int
        The number of layers, input and output included.
    n_outputs_ : int
        The number of output units.
    out_activation_ : str
        The output activation: $out_activation.
""")

_SCORE = {"MLPClassifier": "accuracy", "MLPRegressor": "R^2"}
_OUT_ACTIVATION = {
    "MLPClassifier": "'softmax' (log_loss, multiclass), 'logistic' (log_loss, two classes "
    "or multilabel)\n        or 'identity' (hinge)",
    "MLPRegressor": "'identity', or 'exp' for loss='poisson'",
}


def render(cls):
    """Fill ``$shared_parameters`` and ``$shared_attributes`` in the docstring of
    ``cls`` (MLPClassifier or MLPRegressor) with the text they share."""
    name = cls.__name__
    cls.__doc__ = Template(cls.__doc__).substitute(
        shared_parameters=_SHARED_PARAMETERS.substitute(score=_SCORE[name]).rstrip("\n"),
        shared_attributes=_SHARED_ATTRIBUTES.substitute(
            out_activation=_OUT_ACTIVATION[name]
        ).rstrip("\n"),
    )
    return cls
