"""LIF neuron of the HTDA paper (Eq. 5) on SpikingJelly's ``SimpleBaseNode``.

    h[k+1] = lambda * h[k] * (1 - o[k]) + W x[k+1]
    o[k]   = Heaviside(h[k] - V_th)

SpikingJelly's ``LIFNode`` integrates ``(x - v) / tau`` and keeps ``v_threshold`` a float, so it
matches neither the equation nor a learnable threshold; ``SimpleBaseNode`` lets us write only the
charge and fire steps. The hard reset to 0 (``v_reset=0``) of the base class gives the
``h * (1 - o)`` factor, with the gradient flowing through the spike (``detach_reset=False``).
"""

from __future__ import annotations

import math

import torch
from spikingjelly.activation_based import neuron, surrogate
from torch import nn

from .fused_lif import KERNELS, MultiStepRectLIF

PAPER_DECAY = 0.2
PAPER_THRESHOLD = 0.5
PAPER_SURROGATE_WIDTH = 1.0  # a of Eq. 6: gradient 1/a on |h - V_th| < a/2


def paper_surrogate() -> surrogate.SurrogateFunctionBase:
    """The rectangular surrogate of the paper; SpikingJelly's ``Rect(alpha)`` has width 1/alpha."""
    return surrogate.Rect(alpha=1.0 / PAPER_SURROGATE_WIDTH)


def _inverse_softplus(value: float) -> float:
    return math.log(math.expm1(value))


class PaperLIF(neuron.SimpleBaseNode):
    """One LIF layer with a per-layer decay ``lambda`` and threshold ``V_th``.

    With ``learnable=False`` both are fixed buffers (S-SNN); with ``learnable=True`` they are
    parameters, ``lambda = sigmoid(p)`` stays in (0, 1) and ``V_th = softplus(q)`` stays positive
    (HTDA). Both start at the paper's values (0.2, 0.5).
    """

    def __init__(
        self,
        learnable: bool = False,
        decay: float = PAPER_DECAY,
        threshold: float = PAPER_THRESHOLD,
        surrogate_function: surrogate.SurrogateFunctionBase | None = None,
    ):
        super().__init__(
            v_threshold=threshold,
            v_reset=0.0,
            surrogate_function=surrogate_function or paper_surrogate(),
            detach_reset=False,
            step_mode="m",
        )
        self.learnable = learnable
        # "fused": MultiStepRectLIF when it applies; "compiled": the same through torch.compile;
        # "spikingjelly": SimpleBaseNode's step loop (the reference). Same numbers either way.
        self.kernel = "fused"
        decay_logit = torch.tensor(math.log(decay / (1.0 - decay)))
        threshold_raw = torch.tensor(_inverse_softplus(threshold))
        if learnable:
            self.decay_logit = nn.Parameter(decay_logit)
            self.threshold_raw = nn.Parameter(threshold_raw)
        else:
            self.register_buffer("decay_logit", decay_logit)
            self.register_buffer("threshold_raw", threshold_raw)

    @property
    def decay(self) -> torch.Tensor:
        return torch.sigmoid(self.decay_logit)

    @property
    def threshold(self) -> torch.Tensor:
        return nn.functional.softplus(self.threshold_raw)

    def can_fuse(self) -> bool:
        """The fused kernel covers exactly this case: Rect surrogate, hard reset to 0, and a state
        at rest (v = 0.0) or carried from this layer's previous call (HTDA's second window)."""
        function = self.surrogate_function
        fresh = isinstance(self.v, float) and self.v == 0.0
        return (self.kernel in KERNELS[1:] and type(function) is surrogate.Rect and function.spiking
                and self.v_reset == 0.0 and not self.detach_reset and (fresh or torch.is_tensor(self.v)))

    def multi_step_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if not self.can_fuse():
            return super().multi_step_forward(x_seq)
        v0 = self.v if torch.is_tensor(self.v) else None
        spikes, self.v = MultiStepRectLIF.apply(x_seq, v0, self.decay, self.threshold,
                                                self.surrogate_function.alpha, self.kernel == "compiled")
        return spikes

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.v = self.decay * self.v + x

    def neuronal_fire(self) -> torch.Tensor:
        return self.surrogate_function(self.v - self.threshold)

    def extra_repr(self) -> str:
        return (
            f"learnable={self.learnable}, decay={float(self.decay.detach()):.4f}, "
            f"threshold={float(self.threshold.detach()):.4f}, surrogate={self.surrogate_function}"
        )
