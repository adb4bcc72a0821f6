"""The arithmetic of the exact (fp32) paths."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def without_tf32() -> Iterator[None]:
    """fp32 arithmetic that is fp32 on GPUs too: cuDNN allows TF32 convolutions (10-bit mantissas) by default on
    Ampere and later, which would make the exact paths inexact there. The flags are restored afterwards."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
