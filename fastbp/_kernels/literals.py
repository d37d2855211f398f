"""Constant arguments passed as run-time values.

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

from numba import types
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
