"""Models: the ECAPA-TDNN cry embedder, loading it from anywhere, saving model folders."""
