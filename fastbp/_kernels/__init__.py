"""Private compiled kernels. Everything here is @njit and writes into caller buffers."""
