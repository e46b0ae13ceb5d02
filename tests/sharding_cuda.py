"""The CUDA lowering of a sharded ensemble's fused kernel, on 4 forced host devices (no GPU needed).

Run by tests/test_sharding.py in a fresh process. With the executor told it runs on CUDA, it cross-lowers
``jit(vmap(integrate))`` (the generated kernel) and the rigid-body kernel of an ensemble of N = 64 split over
4 devices, with Explicit and Auto mesh axes, and prints one JSON row per lowering: whether the text calls
the Triton kernel, the ensemble sizes the kernel's operands have (16 = one device's share), whether the
text has an all-gather, and whether the jaxpr binds the fused primitive inside shard_map.
"""

from __future__ import annotations

import json
import re
import sys

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import tpjax
from tpjax import _compat
from tpjax.executors import choice

N = 64


def pendulum_run():
    H = lambda q, p: 0.5 * jnp.sum(p**2) - jnp.sum(jnp.cos(q))
    f = jax.vmap(lambda q, p: tpjax.integrate(H, (q, p), dt=0.01, steps=20))
    return f, (jnp.linspace(0.1, 1.0, N, dtype=jnp.float32), jnp.zeros(N, jnp.float32))


def rigid_body_run():
    inertia = jnp.array([1.0, 2.0, 3.0], jnp.float32)
    H = lambda L: 0.5 * jnp.sum(L**2 / inertia)
    f = jax.vmap(lambda L: tpjax.integrate(H, L, dt=0.01, steps=20, structure="so3", method="rigid_body"))
    return f, (jnp.ones((N, 3), jnp.float32),)


def kernel_operand_sizes(text: str) -> list[int]:
    """The leading dims of the tensors passed to each triton_kernel_call in the StableHLO ``text``."""
    sizes = []
    for line in text.splitlines():
        if "triton_kernel_call" in line and "custom_call" in line:
            # the op's type is the line's tail "} : (operands) -> results"; the escaped backend_config blob
            # before it can hold any bytes, "->" and ":" included
            sig = line.rsplit("} : ", 1)[-1]
            sizes += [int(m) for m in re.findall(r"tensor<(\d+)(?:x\d+)*xf32>", sig.rsplit("->", 1)[0])]
    return sizes


def main():
    choice.on_cuda = lambda: True  # what a CUDA host decides (this process only)
    for name, build in (("pendulum", pendulum_run), ("rigid_body", rigid_body_run)):
        f, args = build()
        for axis in ("explicit", "auto"):
            at = AxisType.Explicit if axis == "explicit" else AxisType.Auto
            mesh = jax.make_mesh((4,), ("ens",), axis_types=(at,))
            xs = jax.device_put(args, NamedSharding(mesh, P("ens")))
            with jax.set_mesh(mesh):
                text = _compat.lower_text_for_cuda(f, *xs)
                jaxpr = str(jax.make_jaxpr(f)(*xs))
            fused = "tp_fused_integrate" if name == "pendulum" else "tp_fused_rigid_body"
            row = {
                "case": name, "mode": axis, "kernel": "triton_kernel_call" in text,
                "sizes": sorted(set(kernel_operand_sizes(text))),
                "all_gather": bool(re.search(r"all[-_]gather", text)),
                "in_shard_map": "shard_map" in jaxpr and jaxpr.index("shard_map") < jaxpr.index(fused),
            }  # fmt: skip
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
