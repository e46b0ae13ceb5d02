"""The tile form of the fused kernel: a per-system array is one Triton tensor, not one register per component.

The unrolled form (``triton_emit``) writes one statement per component: the fastest code for small systems,
but its length grows with the state (an FPU chain of d = 128 is 5k statements and minutes of Triton
compile time; 32 Lennard-Jones atoms, 30k). In the tile form a register of per-system shape ``(n0, n1, ...)``
is a ``[BLOCK, P0, P1, ...]`` tensor (``Pk`` = ``nk`` rounded up to a power of two; row r is system r of
the program; entries past ``nk`` hold values no result reads), so the kernel's length does not grow with the
system:

- elementwise instructions (FMA, ELEM functions, ACC_GRAD, SYMP_STEP, POISSON_J PASS/NEGATE, and the
  comparisons, logic and selects of ``triton_tile_opaque``) are one tensor expression; operands of smaller
  shape (a scalar, a row of a distance matrix) are broadcast as numpy would;
- ``broadcast`` and unit-dimension ``reshape`` are Triton reshapes and broadcasts; ``slice`` and zero ``pad``
  along an axis are one ``tl.gather`` along it and one ``tl.where`` (concatenation, neighbour differences);
- ``SUM`` over axes is ``tl.sum`` of the tensor masked along those axes.

Constant arrays are folded (``jnp.eye``'s iotas and comparisons run once at generation time); a non-uniform
one is read from the kernel's constant table (``Table``) once per program. Anything else (OPAQUE ops other
than the elementwise ones, reshapes that move components) raises NotImplementedError and the XLA path runs.
sin/cos use libdevice here (no bounded-argument form).
"""

from __future__ import annotations

import numpy as np

from ..ir.node import Instr
from ..ir.ops import Op
from .triton_emit import _ELEMENTWISE, _TL_DTYPE, _Emitter, _tag
from .triton_layout import LAYOUT
from .triton_tile_layout import apply_layout, layout, padded, pow2

#: largest padded per-system array (elements) the tile form holds; each tile is BLOCK rows of it.
MAX_TILE = 8192


def size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


class Table:
    """The kernel's table of constant arrays (padded, flattened, in the program's dtype), shared by the
    prologue and the step; read once per program into ``[1, P...]`` tensors."""

    def __init__(self):
        self.values: list[float] = []
        self.offsets: dict[bytes, int] = {}

    def add(self, value: np.ndarray) -> int:
        flat = np.zeros(padded(value.shape), np.float64)
        flat[tuple(slice(0, n) for n in value.shape)] = value
        key = flat.tobytes() + repr(flat.shape).encode()
        if key not in self.offsets:
            self.offsets[key] = len(self.values)
            self.values += [float(v) for v in flat.reshape(-1)]
        return self.offsets[key]


class TileEmitter(_Emitter):
    """``_Emitter`` with per-system arrays as ``[BLOCK, P...]`` tensors (see the module docstring)."""

    def __init__(self, dtype: str, prefix: str, opaque_msg: str, opaque=(), table=None, pre=None):
        super().__init__(dtype, prefix, opaque_msg, opaque)
        self.out: tuple[int, ...] | None = None  # shape of the instruction being written (None: scalar)
        self.table = Table() if table is None else table
        self.pre: dict[str, str] = {} if pre is None else pre  # preamble lines (index ranges, table reads)
        self.widest = 1

    # tensors ----------------------------------------------------------------------------------------
    def dims(self, shape) -> str:
        self.widest = max(self.widest, size(padded(shape)))
        if size(padded(shape)) > MAX_TILE:
            raise NotImplementedError(
                f"tpjax Triton codegen (tile form): an array of shape {tuple(shape)} per system (more than "
                f"{MAX_TILE} padded elements); the XLA path is used"
            )
        return "[" + ", ".join(["BLOCK", *map(str, padded(shape))]) + "]"

    def index(self, rank: int, axis: int, n: int) -> str:
        """The name of ``arange(P)`` placed along ``axis`` of a rank-``rank`` array ([1, .., P, .., 1])."""
        p = pow2(n)
        name = f"ix{rank}_{axis}_{p}"
        if name not in self.pre:
            sub = ", ".join(["None"] * (axis + 1) + [":"] + ["None"] * (rank - axis - 1))
            self.pre[name] = f"{name} = tl.arange(0, {p})[{sub}]"
        return name

    def inside(self, shape, axes) -> str | None:
        """The mask of entries within ``shape`` along ``axes`` (None when no padding there)."""
        conds = [f"({self.index(len(shape), a, shape[a])} < {shape[a]})" for a in axes if pow2(shape[a]) != shape[a]]
        return " & ".join(conds) or None

    def constant_tensor(self, value: np.ndarray) -> str:
        """A non-uniform constant array as a ``[1, P...]`` tensor read from the table (once per program)."""
        value = np.asarray(value)
        off = self.table.add(value.astype(np.float64))
        name = f"k{off}_{'x'.join(map(str, value.shape))}"
        if name not in self.pre:
            strides = np.cumprod((1, *padded(value.shape)[:0:-1]))[::-1]
            flat = " + ".join(f"{self.index(value.ndim, a, n)} * {int(s)}" for a, (n, s) in enumerate(
                zip(value.shape, strides, strict=True)))  # fmt: skip
            self.pre[name] = f"{name} = tl.load(tab_ptr + {off} + {flat})"
            if value.dtype == np.bool_:
                self.pre[name] += " != 0"
        return name

    def expand(self, x: str, shape, to) -> str:
        """Tensor ``x`` of per-system ``shape`` broadcast (numpy's rule) to per-system ``to``."""
        shape, to = tuple(shape), tuple(to)
        if shape == to:
            return x
        lifted = (1,) * (len(to) - len(shape)) + shape
        if len(lifted) != len(shape):
            x = f"tl.reshape({x}, [BLOCK, {', '.join(map(str, padded(lifted)))}])"
        return f"tl.broadcast_to({x}, {self.dims(to)})"

    # operands ---------------------------------------------------------------------------------------
    def ref(self, a) -> str:
        if self.out is None or not isinstance(a, str) or a == "dt":
            return super().ref(a)
        if self.is_const(a):
            return super().ref(a)
        if a in self.arrays:  # a constant with different values in its components
            table = self.constant_tensor(np.broadcast_to(self.arrays[a], self.out))
            return f"tl.broadcast_to({table}, {self.dims(self.out)})"
        return self.expand(self.name(a), self.shape_of(a), self.out)

    def literal_shape(self) -> str:
        return "[BLOCK]" if self.out is None else "[" + ", ".join(["1"] * (len(self.out) + 1)) + "]"

    def tensor(self, a) -> str:
        if a != "dt" and self.is_const(a):
            dims = "[BLOCK]" if self.out is None else self.dims(self.out)
            return f"tl.full({dims}, {self.lit(self.value(a))}, {_TL_DTYPE[self.dtype]})"
        return self.ref(a)

    def set_constant(self, dst: str, value, i: Instr) -> None:
        value = np.asarray(value)
        if value.dtype.kind == "f":
            value = value.astype(self.np)
        self.arrays[dst] = value
        self.shapes[dst] = tuple(value.shape)
        flat = value.reshape(-1)
        uniform = flat.size and np.all(flat == flat[0]) and np.all(np.signbit(flat) == np.signbit(flat[0]))
        if uniform:
            self.consts[dst] = flat[0] if value.dtype.kind in "bi" else self.np(flat[0])
        else:
            self.consts.pop(dst, None)
        (self.bools.add if value.dtype == np.bool_ else self.bools.discard)(dst)
        self.lines.append(f"# {_tag(i)} -> constant {value.dtype}{list(value.shape)}  [{i.phase}]")

    def written(self, dst: str, shape, expr: str, i: Instr, boolean: bool = False) -> None:
        self.consts.pop(dst, None)
        self.arrays.pop(dst, None)
        (self.bools.add if boolean else self.bools.discard)(dst)
        self.emit(dst, expr, i)
        self.shapes[dst] = tuple(shape)

    def constant_of(self, a):
        """The constant value of operand ``a`` (an array of its shape, or a Python scalar literal)."""
        if not isinstance(a, str):
            return a
        return self.arrays[a] if a in self.arrays else np.broadcast_to(self.value(a), self.shape_of(a))

    # instructions -----------------------------------------------------------------------------------
    def instr(self, i: Instr) -> None:
        from .triton_tile_opaque import opaque

        if i.op is Op.OPAQUE:
            opaque(self, i)
            return
        if i.dtype not in _TL_DTYPE:
            raise NotImplementedError(f"tpjax Triton codegen: dtype {i.dtype} of {_tag(i)} (f32/f64 only)")
        func = i.attr("func") if i.op is Op.ELEM else None
        if func in LAYOUT:
            self._layout(i)
        elif i.op is Op.SUM:
            self._sum(i)
        else:
            self._elementwise(i, tuple(self.shape_of(i.dst[0]) if i.op is Op.SYMP_STEP else i.shape))

    def _elementwise(self, i: Instr, shape: tuple[int, ...]) -> None:
        if i.op is Op.ELEM and i.attr("func") not in _ELEMENTWISE:
            raise NotImplementedError(f"tpjax Triton codegen: no rule for ELEM {i.attr('func')} on shape {shape}")
        c = self.fold(i)
        if c is not None:
            self.set_constant(i.dst[0], np.full(shape, c, self.np), i)
            return
        self.arrays.pop(i.dst[0], None)
        self.bools.discard(i.dst[0])
        self.out = shape if shape != () else None
        if shape != ():
            self.dims(shape)
        self._scalar(i)  # one tensor expression: ``ref`` broadcasts each operand to ``shape``
        self.out = None
        self.shapes[i.dst[0]] = shape

    def _layout(self, i: Instr) -> None:
        src = i.args[0]
        if self.is_const(src) or (isinstance(src, str) and src in self.arrays):
            self.set_constant(i.dst[0], apply_layout(i, np.asarray(self.constant_of(src)), 0), i)
            return
        self.written(i.dst[0], i.shape, layout(self, i, self.name(src), self.shape_of(src)), i)

    def _sum(self, i: Instr) -> None:
        src, dst = i.args[0], i.dst[0]
        shape = self.shape_of(src)
        axis = i.attr("axis")
        axes = tuple(range(len(shape))) if axis is None else tuple(int(a) % max(len(shape), 1) for a in axis)
        if self.is_const(src) or (isinstance(src, str) and src in self.arrays):
            self.set_constant(dst, np.sum(np.asarray(self.constant_of(src)), axis=axes).reshape(i.shape), i)
            return
        if shape == ():
            self.written(dst, (), self.name(src), i)
            return
        x = self.name(src)
        mask = self.inside(shape, axes)
        if mask:
            x = f"tl.where({mask}, {x}, 0.0)"
        for a in sorted(axes, reverse=True):
            x = f"tl.sum({x}, axis={a + 1})"
        kept = tuple(n for k, n in enumerate(shape) if k not in axes)
        if kept != tuple(i.shape):
            raise NotImplementedError(f"tpjax Triton codegen (tile form): SUM of {shape} to {i.shape}")
        self.written(dst, i.shape, x, i)
