"""The command-line tools of ``python -m fastbp`` (demo, bench), not the library.

common     data, fit parameters, timing in turns, threads, the machine, pyplot
demo       ``demo``: fastbp and scikit-learn side by side on digits
bench      the bench's workloads (speed-ups, FLOP rate, latency, threads, busy core)
ceilings   FLOP counts, the peak GEMM rate, the ceiling of a speed-up
processes  fresh interpreters (cold / warm start) and the CPU burner
report     rows, verdicts and the printed table
plot       the bench's figure
runner     ``bench``: settings, the run, the machine, JSON and PNG
peers      JAX (jit + lax.scan epoch) and onnxruntime peers, own-shape GEMM time
vs_peers   the peers in the bench's turns, at 1 thread: peer column, GEMM fraction rows
"""
