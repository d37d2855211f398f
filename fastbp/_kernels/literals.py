"""Constant arguments passed as run-time values, and the min and max of two numbers, as
LLVM code in the caller (``smaller``, ``larger``, below).

numba types a constant argument of a call between compiled functions as a literal
(``Literal[int](1)``, ``Literal[bool](False)``) and compiles the callee once more for
it: ``block_view(act, net, 1, n)`` beside ``block_view(act, net, layer, n)`` compiled
``block_view`` twice in every first fit, and the serial epoch's ``row0`` of 0 gave the
forward pass a specialisation that the parallel epoch, whose ``row0`` varies, could not
use. ``runtime(1)`` is 1 typed as a plain integer: one compiled callee serves both
calls.

Measured (CPU s, medians of 7 alternating fresh processes with empty caches, one core,
load 0.4-1.0; the first use of each in one process): a first digits fit 5.57 -> 5.38,
then a predict 1.30 -> 1.22, a first 2-thread blocked fit 6.42 -> 5.51 (it compiled the
forward pass again for its varying ``row0``), an L-BFGS fit 1.88 -> 1.60.
``test_coldstart`` fails if a fastbp function compiles for a literal argument.
"""

import operator

from numba import types
from numba.core import typing
from numba.extending import intrinsic


@intrinsic
def runtime(typingctx, value):
    """``value`` (an integer or boolean) with its literal type dropped."""
    if not isinstance(value, (types.Integer, types.Boolean, types.IntegerLiteral,
                              types.BooleanLiteral)):
        return None
    plain = types.unliteral(value)

    def codegen(context, builder, signature, args):
        return context.cast(builder, args[0], signature.args[0], plain)

    return plain(value), codegen


def _pick(compare):
    def pick(typingctx, a, b):
        if not (isinstance(a, types.Number) and isinstance(b, types.Number)):
            return None
        ty = typingctx.unify_types(types.unliteral(a), types.unliteral(b))
        if ty is None:
            return None

        def codegen(context, builder, signature, args):
            x = context.cast(builder, args[0], signature.args[0], ty)
            y = context.cast(builder, args[1], signature.args[1], ty)
            test = context.get_function(compare, typing.signature(types.boolean, ty, ty))
            return builder.select(test(builder, (y, x)), y, x)

        return ty(a, b), codegen

    return pick


# Python's min(a, b) and max(a, b) of two numbers (a unless b is smaller / larger, so a
# NaN ``a`` stays), as numba computes them, in the arguments' unified type. LLVM code in
# the caller: numba's own min and max are overloads, each signature a compile of its
# own (three of a cold first fit's ~30).
smaller = intrinsic(_pick(operator.lt))
larger = intrinsic(_pick(operator.gt))
