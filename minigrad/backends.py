"""torch.backends as scripts touch it: cuDNN's flags and the MPS question.

minigrad uses neither cuDNN nor MPS, and its results do not depend on these flags (it is deterministic either
way), so the flags are only kept: `torch.backends.cudnn.deterministic = True` and the like run unchanged.
"""
from __future__ import annotations

from types import SimpleNamespace

cudnn = SimpleNamespace(enabled=True, benchmark=False, deterministic=False, allow_tf32=True,
                        is_available=lambda: False, version=lambda: None)
mps = SimpleNamespace(is_available=lambda: False, is_built=lambda: False)

__all__ = ["cudnn", "mps"]
