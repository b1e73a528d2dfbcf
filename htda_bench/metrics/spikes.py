"""Firing rates and operation counts of the feature extractor (paper Fig. 4, Fig. 5, Table 2).

Spikes are watched with SpikingJelly's ``monitor.OutputMonitor`` on the model's extractor LIF
layers (``model.spiking_layers()``); operations are counted with SpikingJelly's ``op_counter``.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import monitor
from spikingjelly.activation_based.op_counter import DispatchCounterMode, MACCounter, SynOpCounter

aten = torch.ops.aten


def _count_per_step_and_example(spikes: torch.Tensor) -> tuple[torch.Tensor, int]:
    """[T, B, ...] spikes -> ([T, B] spike counts, neurons per step)."""
    spikes = spikes.detach()
    return spikes.flatten(2).sum(2, dtype=torch.float64), spikes[0, 0].numel()


class SpikeRecorder:
    """Context manager recording per-layer, per-step, per-example spike counts of the extractor.

    ``enabled`` can be switched off while an attack runs its own forward passes, so only the
    scored forward pass is counted.
    """

    def __init__(self, model):
        names = {id(module): name for name, module in model.named_modules()}
        self.layer_names = [names[id(layer)] for layer in model.spiking_layers()]
        self.monitor = monitor.OutputMonitor(model, type(model.spiking_layers()[0]),
                                             function_on_output=_count_per_step_and_example)

    def __enter__(self) -> "SpikeRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self.monitor.remove_hooks()

    @property
    def enabled(self) -> bool:
        return self.monitor.is_enable()

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self.monitor.enable() if value else self.monitor.disable()

    def clear(self) -> None:
        self.monitor.clear_recorded_data()

    def counts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Spike counts [layers, K, B] of the last forward call(s), and neurons per layer [layers].

        An HTDA layer is called once per attention window; its windows are joined in time order.
        """
        per_layer, neurons = [], []
        for name in self.layer_names:
            records = self.monitor[name]
            if not records:
                raise RuntimeError("no spikes recorded: run a forward pass inside the recorder")
            per_layer.append(torch.cat([counts for counts, _ in records], 0))
            neurons.append(records[0][1])
        return torch.stack(per_layer), torch.tensor(neurons, dtype=torch.float64)


def firing_rate_per_example(counts: torch.Tensor, neurons: torch.Tensor) -> torch.Tensor:
    """Fraction of extractor neurons firing, over all layers and steps, per example: [B]."""
    steps = counts.shape[1]
    return counts.sum((0, 1)) / (steps * neurons.sum())


def firing_rate_matrix(counts: torch.Tensor, neurons: torch.Tensor) -> torch.Tensor:
    """Mean firing rate per layer x time step over the examples: [layers, K] (paper Fig. 5)."""
    return counts.mean(2) / neurons[:, None]


@torch.no_grad()
def record_firing(model, images: torch.Tensor, batch_size: int = 200) -> dict:
    """Firing rate per example and the layer x step matrix on clean images."""
    rates, matrices, weights = [], [], []
    with SpikeRecorder(model) as recorder:
        for start in range(0, len(images), batch_size):
            recorder.clear()
            batch = images[start : start + batch_size]
            model(batch)
            counts, neurons = recorder.counts()
            rates.append(firing_rate_per_example(counts, neurons))
            matrices.append(firing_rate_matrix(counts, neurons) * len(batch))
            weights.append(len(batch))
    return {"per_example": torch.cat(rates), "matrix": sum(matrices) / sum(weights)}


def _no_count(args, kwargs, out):
    return 0


@torch.no_grad()
def operation_counts(model, images: torch.Tensor) -> dict[str, float]:
    """Sparse MACs per inference, in millions, averaged over ``images``.

    Synaptic operations driven by binary spikes count only the spikes that occurred
    (SpikingJelly ``SynOpCounter``); layers fed real values (the encoding layer on a static image,
    the attention ANN, the decoder over real-valued readouts) count their dense MACs
    (``MACCounter``). BatchNorm is not counted: it folds into the convolution at inference.
    """
    synops = SynOpCounter()
    macs = MACCounter()
    for key in list(macs.rules):
        if "batch_norm" in str(key):
            macs.rules[key] = _no_count
    with DispatchCounterMode([synops, macs]):
        model(images)
    batch = len(images)
    return {
        "synops_m": synops.get_total() / batch / 1e6,
        "dense_macs_m": macs.get_total() / batch / 1e6,
        "macs_m": (synops.get_total() + macs.get_total()) / batch / 1e6,
    }


def parameter_count(model) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
