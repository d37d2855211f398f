"""Developer tools around fastbp (benchmarks, peers, plots): not part of the library."""
