"""Muon (Jordan et al. 2024): SGD momentum whose update for each filter bank is replaced by the nearest
semi-orthogonal matrix, found by a few Newton-Schulz iterations. Written from the description in
Keller Jordan's blog post "Muon: An optimizer for hidden layers" and airbench94_muon.

The iteration runs in bf16 where the device computes bf16 natively (CUDA, CPUs with AVX-512-BF16/AMX): it is
a handful of small matmuls per step (~0.5% of a step of the airbench network at batch 2000), and in fp32
elsewhere, where emulated bf16 would be the slower choice.
"""
from __future__ import annotations

import torch

from ..device import cpu_has_bf16

# Quintic coefficients chosen to maximise the slope at zero (from the blog post): singular values land in
# roughly [0.7, 1.2] after 3-5 steps rather than exactly at 1, which trains as well as the exact polar factor.
_A, _B, _C = 3.4445, -4.7750, 2.0315


def orthogonalise(g: torch.Tensor, steps: int = 3, eps: float = 1e-7) -> torch.Tensor:
    """An approximation of U V^T for g = U S V^T (g is 2-D)."""
    fast = g.device.type == "cuda" or (g.device.type == "cpu" and cpu_has_bf16())
    x = g.to(torch.bfloat16 if fast else torch.float32)
    x = x / (x.norm() + eps)  # top singular value <= 1, where the iteration converges
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    for _ in range(steps):  # x <- A x + (B a + C a^2) x with a = x x^T, in three fused matmuls
        a = x @ x.T
        x = torch.addmm(x, torch.addmm(a, a, a, beta=_B, alpha=_C), x, beta=_A)
    return (x.T if tall else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """For weights of 2 or more dimensions (a conv's filters are flattened to out x in*kh*kw).
    `normalize`: rescale each weight to norm sqrt(rows) before the step; for filters that feed BatchNorm,
    whose output does not depend on their scale, this keeps the effective step size constant."""

    def __init__(self, params, lr: float, momentum: float = 0.6, nesterov: bool = True, steps: int = 3,
                 normalize: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, steps=steps,
                                      normalize=normalize))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                buf = state["momentum_buffer"]
                buf.mul_(group["momentum"]).add_(p.grad)
                g = p.grad.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf
                if group["normalize"]:
                    p.mul_(len(p) ** 0.5 / p.norm().clamp_min(1e-12))
                update = orthogonalise(g.reshape(len(g), -1), group["steps"]).view_as(p)
                p.add_(update, alpha=-group["lr"])
        return loss
