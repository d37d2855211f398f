"""512-bit vectors for the loops of a compiled function, where the CPU has them.

LLVM vectorises a loop to the width its tuning for the CPU prefers, which for Intel's
AVX-512 cores (Skylake-X and later: ``skylake-avx512``, ``icelake-server``,
``rocketlake``, ``sapphirerapids``) is 256 bits: on the first of them a core running
512-bit arithmetic lowered its clock. fastbp's steps already run OpenBLAS's 512-bit
kernels (SkylakeX's or a later core's), so the clock is what it is; a loop
that stays at 256 bits only issues twice the instructions. ``wide()`` asks LLVM for
512-bit vectors in the loops of the function numba compiles the call into
(``"prefer-vector-width"="512"``, the attribute clang's ``-mprefer-vector-width=512``
sets): the calling function's own, or its caller's when numba inlines it there
(``inline="always"``). On a CPU without AVX-512 LLVM keeps to the widest vectors it has,
so the call is harmless there. The kernels that call it, and what they measured, are in
CONTRIBUTING ("Vector width").

The element-wise loops that call it wrote the same bits at either width in the tests
(each lane does the scalar code's operations in the same order), but softplus, whose
scalar tail rounds one step differently from its vector body: at most 1 ulp apart in the
tail, whose length changes with the width. A reduction that may reassociate
(``penalties.sum_of_squares``) sums in other lanes: other last bits, the same on every
run.
"""

from numba import types
from numba.extending import intrinsic

ATTRIBUTE = '"prefer-vector-width"="512"'


@intrinsic
def wide(typingctx):
    """Ask LLVM for 512-bit vectors in the calling function (module docstring)."""

    def codegen(context, builder, signature, args):
        # llvmlite's FunctionAttributes accepts only the attributes it names; a string
        # attribute is written out as given (its ``_to_list``), so it goes in as the
        # set's own item. Should a later llvmlite refuse that, the function compiles at
        # the default width (tests/test_kernels.py sees the attribute missing).
        try:
            set.add(builder.function.attributes, ATTRIBUTE)
        except (TypeError, AttributeError):
            pass
        return context.get_dummy_value()

    return types.none(), codegen
