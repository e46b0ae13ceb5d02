"""Reading a lowering's StableHLO text in tests: which Triton kernels its ``triton_kernel_call``s launch."""

from __future__ import annotations

import re
import zlib


def _unescape(text: str) -> bytes:
    """An MLIR string attribute's bytes: ``\\XX`` is a hex byte, ``\\\\`` and ``\\"`` the characters."""
    esc = lambda m: bytes([int(m.group(1), 16)]) if len(m.group(1)) == 2 else m.group(1)[-1:].encode()
    return re.sub(r'\\([0-9A-Fa-f]{2}|\\|")', lambda m: esc(m).decode("latin-1"), text).encode("latin-1")


def kernel_names(hlo: str) -> list[str]:
    """The Triton kernel of every ``triton_kernel_call`` in a StableHLO text (its zlib-compressed config)."""
    out = []
    pat = r'@triton_kernel_call\([^)]*\) \{api_version = 2 : i32, backend_config = "((?:[^"\\]|\\.)*)"'
    for m in re.finditer(pat, hlo):
        names = re.findall(rb"(fused_\w+_kernel|\w+_kernel)", zlib.decompress(_unescape(m.group(1))))
        out.append(names[0].decode() if names else "?")
    return out
