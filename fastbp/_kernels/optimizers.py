"""Fused in-place optimizer updates over the flat parameter vector.

Each update reads the gradient through ``form = (gscale, n_coefs, alpha, total)`` as
``(grads[j] + alpha * params[j]) / total * gscale`` (the alpha term on the first
``n_coefs`` entries, the weights, only; see ``final_gradient``): ``train_epoch`` hands
the raw gradient sums with the L2 penalty and the weight sum, which saves a whole pass
over the parameters (``penalties.finalize_gradient``), or a finished gradient with
``(gscale, n_coefs, 0.0, 1.0)``, ``gscale`` < 1 when the global norm is clipped. The state
lives in two vectors ``s0``, ``s1`` of the parameter layout (``step`` takes them apart
so that the parallel kernels can update a slice of every vector: an update is
element-wise). ``step`` selects the rule by integer code.

The kernels run a rule through its C callback (``call``, at the address ``address``
gives: one per rule and dtype, compiled or loaded from the cache on first use), so
that one compiled epoch serves every optimizer and a fit compiles only its own rule.
Measured against one epoch kernel per optimizer, each rule inlined into its own (cold
digits fits, CPU, alternating fresh processes, empty cache, load about 1): a first fit
5.1-5.3 s either way; a second solver's first fit 1.55-1.65 -> 0.41 s; a first blocked
fit 11.7 -> 10.1 s (its step region compiled all five rules); epochs as fast.

The scalar hyperparameters arrive as float64; each rule first combines them in float64
(``1 - beta_1``, Adam's bias-corrected step size) and rounds the results once to the
parameters' dtype (``params.dtype.type``), so that the loop over the parameters runs in
that dtype: numba promotes ``float32 * float64`` to float64, and without the rounding a
float32 network's update ran in float64 (half the SIMD lanes, plus conversions). In
float64 the rounding is the identity. The rounded values get new names: numba gives a
variable one type, and a float64 argument reassigned a float32 would stay float64.
(scikit-learn on float32 coefs keeps its state in float32 too; only its Adam divides in
float64, its step size being a NumPy float64 scalar.)
"""

import math

from numba import carray, njit, types
from numba.extending import intrinsic

from .._config import HELPER_JIT_OPTIONS, INLINED_JIT_OPTIONS
from .callbacks import CallbackTable, call_at
from .vectorwidth import wide

SGD = 0
ADAM = 1
ADAMW = 2
RMSPROP = 3
ADAGRAD = 4

CODES = {"sgd": SGD, "adam": ADAM, "adamw": ADAMW, "rmsprop": RMSPROP, "adagrad": ADAGRAD}


@njit(**HELPER_JIT_OPTIONS)
def final_gradient(grads, params, j, n_coefs, alpha, total, gscale):
    """Entry ``j`` of the gradient the rules step along (see the module docstring);
    ``alpha``, ``total`` and ``gscale`` already in the parameters' dtype.

    The weight is read for biases too (times 0): a load under a condition kept LLVM
    from vectorising the loops that call this."""
    a = alpha if j < n_coefs else alpha - alpha  # a zero of the same type
    return (grads[j] + a * params[j]) / total * gscale


@njit(**HELPER_JIT_OPTIONS)
def sgd_step(params, grads, form, velocity, lr, momentum, nesterov):
    """SGD with (Nesterov) momentum: v <- mu v - lr g; w <- w + v (or + mu v - lr g)."""
    wide()
    cast = params.dtype.type
    gs, nc, a, tot = cast(form[0]), form[1], cast(form[2]), cast(form[3])
    step_size, mu = cast(lr), cast(momentum)
    for j in range(params.shape[0]):
        g = final_gradient(grads, params, j, nc, a, tot, gs)
        v = mu * velocity[j] - step_size * g
        velocity[j] = v
        if nesterov:
            params[j] += mu * v - step_size * g
        else:
            params[j] += v


@njit(**HELPER_JIT_OPTIONS)
def adam_step(params, grads, form, m, v, t, lr_init, beta_1, beta_2, epsilon, decay=1.0):
    """Adam step number ``t`` (1-based), bias correction folded into the step size
    (scikit-learn's form: ``w -= lr_t m / (sqrt(v) + eps)``).

    ``decay`` < 1 is AdamW's decoupled weight decay, ``w <- w * decay`` before the step,
    on the weights only (the first ``form[1]`` entries; biases are not decayed, like
    the L2 and L1 terms), in the same pass: the L2 term reads the undecayed weight."""
    wide()
    cast = params.dtype.type
    gs, nc, a, tot = cast(form[0]), form[1], cast(form[2]), cast(form[3])
    # C's pow, as scikit-learn's Python float ** int (numba's float ** int squares
    # repeatedly, a function compiled of its own)
    step_size = cast(lr_init * math.sqrt(1.0 - math.pow(beta_2, float(t)))
                     / (1.0 - math.pow(beta_1, float(t))))
    eps, keep, one = cast(epsilon), cast(decay), cast(1.0)
    b1, c1, b2, c2 = cast(beta_1), cast(1.0 - beta_1), cast(beta_2), cast(1.0 - beta_2)
    for j in range(params.shape[0]):
        g = final_gradient(grads, params, j, nc, a, tot, gs)
        mj = b1 * m[j] + c1 * g
        vj = b2 * v[j] + c2 * (g * g)
        m[j] = mj
        v[j] = vj
        w = params[j] * (keep if j < nc else one)
        params[j] = w + -step_size * mj / (math.sqrt(vj) + eps)


@njit(**HELPER_JIT_OPTIONS)
def rmsprop_step(params, grads, form, v, lr, rho, epsilon):
    """RMSprop: v <- rho v + (1 - rho) g^2; w <- w - lr g / (sqrt(v) + eps)."""
    wide()
    cast = params.dtype.type
    gs, nc, a, tot = cast(form[0]), form[1], cast(form[2]), cast(form[3])
    step_size, eps = cast(lr), cast(epsilon)
    r, c = cast(rho), cast(1.0 - rho)
    for j in range(params.shape[0]):
        g = final_gradient(grads, params, j, nc, a, tot, gs)
        vj = r * v[j] + c * (g * g)
        v[j] = vj
        params[j] -= step_size * g / (math.sqrt(vj) + eps)


@njit(**HELPER_JIT_OPTIONS)
def adagrad_step(params, grads, form, acc, lr, epsilon):
    """Adagrad: G <- G + g^2; w <- w - lr g / (sqrt(G) + eps)."""
    wide()
    cast = params.dtype.type
    gs, nc, a, tot = cast(form[0]), form[1], cast(form[2]), cast(form[3])
    step_size, eps = cast(lr), cast(epsilon)
    for j in range(params.shape[0]):
        g = final_gradient(grads, params, j, nc, a, tot, gs)
        acc_j = acc[j] + g * g
        acc[j] = acc_j
        params[j] -= step_size * g / (math.sqrt(acc_j) + eps)


# Inlined into the caller: called with a constant ``code`` (each rule's C callback,
# ``_callback``), numba prunes the other rules' branches before compiling them.
@njit(**INLINED_JIT_OPTIONS)
def step(code, params, grads, form, s0, s1, t, lr, momentum, nesterov, beta_1, beta_2,
         epsilon, rho, weight_decay):
    """One update of optimizer ``code``; ``t`` is the 1-based step number (Adam's bias
    correction), ``form`` as in the module docstring, ``s0``/``s1`` the state vectors."""
    if code == SGD:
        sgd_step(params, grads, form, s0, lr, momentum, nesterov)
    elif code == ADAM:
        adam_step(params, grads, form, s0, s1, t, lr, beta_1, beta_2, epsilon)
    elif code == ADAMW:
        adam_step(params, grads, form, s0, s1, t, lr, beta_1, beta_2, epsilon,
                  1.0 - lr * weight_decay)
    elif code == RMSPROP:
        rmsprop_step(params, grads, form, s0, lr, rho, epsilon)
    else:  # ADAGRAD
        adagrad_step(params, grads, form, s0, lr, epsilon)


# ---------------------------------------------------------------------------------------
# The rules as C callbacks: (params, grads, n, s0, s1, the four entries of ``form``, t,
# lr, momentum, nesterov, beta_1, beta_2, epsilon, rho, weight_decay); the arrays as
# pointers to n entries of the network's dtype, the scalars float64 / int64.


def _callback(code):
    """The C callback body of rule ``code`` (a constant: ``step`` keeps only it)."""

    def rule(pp, gp, n, s0p, s1p, gscale, n_coefs, alpha, total, t, lr, momentum,
             nesterov, beta_1, beta_2, epsilon, rho, weight_decay):
        step(code, carray(pp, n), carray(gp, n), (gscale, n_coefs, alpha, total),
             carray(s0p, n), carray(s1p, n), t, lr, momentum, nesterov != 0, beta_1,
             beta_2, epsilon, rho, weight_decay)

    return rule


_RULES = {code: _callback(code) for code in CODES.values()}


def _signature(dtype):
    ptr, f8, i8 = types.CPointer(dtype), types.float64, types.int64
    return types.void(ptr, ptr, types.intp, ptr, ptr, f8, i8, f8, f8, i8, f8, f8, i8, f8,
                      f8, f8, f8, f8)


_TABLE = CallbackTable(_RULES, _signature)
address, cached, loaded = _TABLE.address, _TABLE.cached, _TABLE.loaded


@intrinsic
def call(typingctx, fn, params, grads, s0, s1, form, t, lr, momentum, nesterov, beta_1,
         beta_2, epsilon, rho, weight_decay):
    """Run the rule at address ``fn`` (``address``) over ``params`` (1-D, contiguous,
    with ``grads``, ``s0``, ``s1`` alike): the arguments of ``step`` after its code."""
    arrays = (params, grads, s0, s1)
    if not (isinstance(fn, types.Integer)
            and all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"
                    and a.dtype == params.dtype for a in arrays)
            and isinstance(form, types.BaseTuple) and len(form) == 4):
        return None
    scalars = (*form, t, lr, momentum, nesterov, beta_1, beta_2, epsilon, rho, weight_decay)
    sig = types.void(fn, *arrays, form, *scalars[4:])

    def codegen(context, builder, signature, args):
        address, form_value = args[0], args[5]
        views = [context.make_array(ty)(context, builder, value)
                 for ty, value in zip(signature.args[1:5], args[1:5], strict=True)]
        n = builder.extract_value(views[0].shape, 0)
        values = [builder.extract_value(form_value, i) for i in range(4)] + list(args[6:])
        c_signature = _signature(params.dtype)
        ptr = c_signature.args[0]
        call_at(context, builder, c_signature, address,
                [views[0].data, views[1].data, n, views[2].data, views[3].data, *values],
                [ptr, ptr, types.intp, ptr, ptr, *scalars])
        return context.get_dummy_value()

    return sig, codegen
