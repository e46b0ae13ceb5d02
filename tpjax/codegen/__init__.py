"""Code generators for TP-IR: the reference interpreter (any XLA backend) and Triton (CUDA)."""
