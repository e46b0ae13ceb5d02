"""From a JAX Hamiltonian to TP-IR: trace (make_jaxpr), map equations, generate gradients by jax.grad."""
