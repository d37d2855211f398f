"""asv benchmarks of fastbp, next to scikit-learn's MLP; run from asv_bench/ (asv.conf.json)."""
