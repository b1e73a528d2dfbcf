"""A fused multi-step forward/backward for ``PaperLIF`` with the rectangular surrogate.

Hand-written because nothing in SpikingJelly does it on a CPU: ``SimpleBaseNode`` loops over time
through autograd (about ten recorded ops per step and layer, each a full pass over memory), and
SpikingJelly's fused CuPy/Triton kernels exist only for its own neurons, on GPUs. Here one autograd
node covers all T steps: the forward is the very same arithmetic as ``SimpleBaseNode`` (so spikes
are bit-identical), only ``h`` is saved, and the backward applies the surrogate chain rule of

    h[t] = decay * v[t-1] + x[t],   s[t] = H(h[t] - V_th),   v[t] = (1 - s[t]) * h[t]

step by step in reverse, with the rectangular surrogate dH/du = alpha * 1{|u| < 0.5 / alpha}.
Gradients for ``decay`` and ``V_th`` are summed only when they are wanted (training an HTDA).
"""

from __future__ import annotations

import torch


class MultiStepRectLIF(torch.autograd.Function):
    """(spikes [T, ...], final v) = LIF(x_seq [T, ...]) from v0 (None: rest), hard reset to 0.

    The final membrane state is an output with a gradient: HTDA runs each layer twice per forward
    (one call per attention window), the second call starting from the first call's state.
    """

    @staticmethod
    def forward(ctx, x_seq: torch.Tensor, v0: torch.Tensor | None, decay: torch.Tensor,
                threshold: torch.Tensor, alpha: float):
        potentials = torch.empty(x_seq.shape, dtype=x_seq.dtype, device=x_seq.device)
        spikes = torch.empty_like(potentials)
        v = v0
        for t in range(x_seq.shape[0]):
            h = potentials[t]  # written in place: no per-step temporaries to stack afterwards
            if v is None:
                h.copy_(x_seq[t])  # SimpleBaseNode's decay * 0.0 + x[0] is exactly x[0]
            else:
                torch.mul(decay, v, out=h)
                h.add_(x_seq[t])
            fired = (h - threshold) >= 0  # SpikingJelly's heaviside(h - V_th), same rounding
            spikes[t].copy_(fired)
            v = h.masked_fill(fired, 0.0)  # (1 - s) * h, exactly
        ctx.save_for_backward(potentials, spikes, v0, decay, threshold)
        ctx.alpha = float(alpha)
        return spikes, v

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor | None, grad_final_v: torch.Tensor | None):
        potentials, spikes, v0, decay, threshold = ctx.saved_tensors
        alpha, half_width = ctx.alpha, 0.5 / ctx.alpha
        want_decay, want_threshold = ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        if grad_spikes is None:
            grad_spikes = torch.zeros_like(spikes)
        grad_x = torch.empty_like(potentials)
        grad_decay = torch.zeros((), dtype=torch.float32, device=potentials.device)
        grad_threshold = torch.zeros((), dtype=torch.float32, device=potentials.device)
        grad_v = grad_final_v  # dL/dv[t], arriving from step t+1 (or from the next call)
        for t in range(potentials.shape[0] - 1, -1, -1):
            h = potentials[t]
            grad_spike = grad_spikes[t]
            if grad_v is not None:
                grad_spike = grad_spike - h * grad_v  # v[t] = (1 - s[t]) h[t]: dv/ds = -h
            outside = (h - threshold).abs_() >= half_width  # Rect surrogate: zero outside the window
            grad_u = grad_spike.masked_fill(outside, 0.0)
            if alpha != 1.0:
                grad_u.mul_(alpha)
            if grad_v is None:
                grad_x[t].copy_(grad_u)
            else:
                torch.add(grad_u, grad_v.masked_fill(spikes[t].bool(), 0.0), out=grad_x[t])
            grad_h = grad_x[t]
            if want_threshold:
                grad_threshold -= grad_u.sum(dtype=torch.float32)
            previous_v = v0 if t == 0 else potentials[t - 1].masked_fill(spikes[t - 1].bool(), 0.0)
            if previous_v is None:
                grad_v = None
                continue
            if want_decay:
                grad_decay += (grad_h * previous_v).sum(dtype=torch.float32)
            grad_v = decay * grad_h
        return (grad_x, grad_v if ctx.needs_input_grad[1] else None,
                grad_decay.to(decay.dtype) if want_decay else None,
                grad_threshold.to(threshold.dtype) if want_threshold else None, None)
