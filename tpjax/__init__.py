"""tpjax: structure-preserving Hamiltonian simulation in JAX through TP-IR."""
