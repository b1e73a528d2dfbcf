"""A fused multi-step forward/backward for ``PaperLIF`` with the rectangular surrogate.

Hand-written because nothing in SpikingJelly does it on a CPU: ``SimpleBaseNode`` loops over time
through autograd (about ten recorded ops per step and layer, each a full pass over memory), and
SpikingJelly's fused CuPy/Triton kernels exist only for its own neurons, on GPUs. Here one autograd
node covers all T steps: the forward is the very same arithmetic as ``SimpleBaseNode`` (so spikes
are bit-identical), only ``h`` and the spikes are saved, and the backward applies the chain rule of

    h[t] = decay * v[t-1] + x[t],   s[t] = H(h[t] - V_th),   v[t] = (1 - s[t]) * h[t]

step by step in reverse, with the rectangular surrogate dH/du = alpha * 1{|u| < 0.5 / alpha}, in
the order autograd would apply it (float32 input gradients are bit-identical too). The two loops
are plain functions; ``kernel="compiled"`` runs them through ``torch.compile`` (one C++ loop per
step instead of a pass per op), falling back to eager if no compiler works.
"""

from __future__ import annotations

import functools
import warnings

import torch

KERNELS = ("spikingjelly", "fused", "compiled")


def lif_forward(x_seq: torch.Tensor, v0: torch.Tensor | None, decay: torch.Tensor, threshold: torch.Tensor):
    """(spikes, potentials h, final v) for x_seq [T, ...] from v0 (None: at rest, v = 0)."""
    potentials, spikes = [], []
    v = v0
    for t in range(x_seq.shape[0]):
        h = x_seq[t] + 0.0 if v is None else decay * v + x_seq[t]  # SimpleBaseNode: decay * 0.0 + x
        spike = ((h - threshold) >= 0).to(h)  # SpikingJelly's heaviside(h - V_th)
        potentials.append(h)
        spikes.append(spike)
        v = (1.0 - spike) * h  # hard reset to 0
    return torch.stack(spikes), torch.stack(potentials), v


def lif_backward(grad_spikes: torch.Tensor, grad_final_v: torch.Tensor | None, potentials: torch.Tensor,
                 spikes: torch.Tensor, v0: torch.Tensor | None, decay: torch.Tensor, threshold: torch.Tensor,
                 alpha: float, want_decay: bool, want_threshold: bool):
    """(dL/dx_seq, dL/dv0, dL/ddecay, dL/dV_th) by reverse time steps."""
    grads = []
    grad_decay = torch.zeros((), dtype=torch.float32, device=potentials.device)
    grad_threshold = torch.zeros((), dtype=torch.float32, device=potentials.device)
    grad_v = grad_final_v  # dL/dv[t], arriving from step t+1 (or from the layer's next call)
    for t in range(potentials.shape[0] - 1, -1, -1):
        h, spike = potentials[t], spikes[t]
        grad_spike = grad_spikes[t] if grad_v is None else grad_spikes[t] - h * grad_v  # dv/ds = -h
        grad_u = alpha * ((h - threshold).abs() < 0.5 / alpha).to(h) * grad_spike  # rect_backward
        grad_h = grad_u if grad_v is None else grad_u + (1.0 - spike) * grad_v
        grads.append(grad_h)
        if want_threshold:
            grad_threshold = grad_threshold - grad_u.sum(dtype=torch.float32)
        previous_v = v0 if t == 0 else (1.0 - spikes[t - 1]) * potentials[t - 1]
        if previous_v is None:
            grad_v = None
            continue
        if want_decay:
            grad_decay = grad_decay + (grad_h * previous_v).sum(dtype=torch.float32)
        grad_v = decay * grad_h
    grads.reverse()
    return torch.stack(grads), grad_v, grad_decay, grad_threshold


@functools.cache
def _compiled(function):
    return torch.compile(function, dynamic=True)


def _run(function, compiled: bool, *args):
    if compiled:
        # detached: compiled graphs are specialised on requires_grad, which says nothing here
        args = tuple(arg.detach() if torch.is_tensor(arg) else arg for arg in args)
        try:
            return _compiled(function)(*args)
        except Exception as error:  # no working C++ compiler, or an inductor limitation
            warnings.warn(f"torch.compile of the LIF kernel failed ({type(error).__name__}); running it eagerly")
    return function(*args)


class MultiStepRectLIF(torch.autograd.Function):
    """(spikes [T, ...], final v) = LIF(x_seq [T, ...]) from v0 (None: rest), hard reset to 0.

    The final membrane state is an output with a gradient: HTDA runs each layer twice per forward
    (one call per attention window), the second call starting from the first call's state.
    """

    @staticmethod
    def forward(ctx, x_seq, v0, decay, threshold, alpha: float, compiled: bool):
        spikes, potentials, final_v = _run(lif_forward, compiled, x_seq, v0, decay, threshold)
        ctx.save_for_backward(potentials, spikes, v0, decay, threshold)
        ctx.alpha, ctx.compiled = float(alpha), compiled
        return spikes, final_v

    @staticmethod
    def backward(ctx, grad_spikes, grad_final_v):
        potentials, spikes, v0, decay, threshold = ctx.saved_tensors
        if grad_spikes is None:
            grad_spikes = torch.zeros_like(spikes)
        want_decay, want_threshold = ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        grad_x, grad_v0, grad_decay, grad_threshold = _run(
            lif_backward, ctx.compiled, grad_spikes, grad_final_v, potentials, spikes, v0, decay, threshold,
            ctx.alpha, want_decay, want_threshold)
        return (grad_x, grad_v0 if ctx.needs_input_grad[1] else None,
                grad_decay.to(decay.dtype) if want_decay else None,
                grad_threshold.to(threshold.dtype) if want_threshold else None, None, None)
