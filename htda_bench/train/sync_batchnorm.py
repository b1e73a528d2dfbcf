"""BatchNorm whose batch statistics span all ranks, for DistributedDataParallel training on CPU.

Written by hand because ``torch.nn.SyncBatchNorm`` runs only on GPU/XPU (it raises for CPU
tensors). With it, a DDP step over a global batch split across ranks normalises with the same
statistics as a single process on the whole batch, so both give the same parameters.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def _global_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Per-channel mean and biased variance over every rank's batch, and the element count."""
    dims = [0] + list(range(2, x.dim()))
    channels = x.shape[1]
    count = torch.tensor([x.numel() / channels], dtype=torch.float64)
    stats = torch.cat([x.double().sum(dims), x.double().pow(2).sum(dims), count])
    dist.all_reduce(stats)
    total = float(stats[-1])
    mean = stats[:channels] / total
    return mean, stats[channels : 2 * channels] / total - mean.pow(2), total


class _SyncBatchNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean, var, total = _global_stats(x)
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        inv_std = torch.rsqrt(var + eps).to(x.dtype)
        x_hat = (x - mean.to(x.dtype).view(shape)) * inv_std.view(shape)
        ctx.save_for_backward(x_hat, weight, inv_std)
        ctx.total = total
        unbiased = (var * total / max(total - 1.0, 1.0)).to(x.dtype)
        out_mean, out_var = mean.to(x.dtype), unbiased
        ctx.mark_non_differentiable(out_mean, out_var)
        return x_hat * weight.view(shape) + bias.view(shape), out_mean, out_var

    @staticmethod
    def backward(ctx, grad_out, _grad_mean, _grad_var):
        x_hat, weight, inv_std = ctx.saved_tensors
        dims = [0] + list(range(2, grad_out.dim()))
        channels = grad_out.shape[1]
        shape = [1, channels] + [1] * (grad_out.dim() - 2)
        local = torch.cat([grad_out.sum(dims), (grad_out * x_hat).sum(dims)])
        total = local.clone()
        dist.all_reduce(total)
        grad_x = (weight * inv_std).view(shape) * (
            grad_out - total[:channels].view(shape) / ctx.total
            - x_hat * total[channels:].view(shape) / ctx.total
        )
        # Parameter gradients stay local sums: DDP's average over ranks then gives the global one.
        return grad_x, local[channels:], local[:channels], None


class CPUSyncBatchNorm(nn.BatchNorm2d):
    """Drop-in for ``nn.BatchNorm2d``; synchronises statistics only in training under torch.distributed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        out, mean, var = _SyncBatchNormFunction.apply(x, self.weight, self.bias, self.eps)
        with torch.no_grad():
            self.num_batches_tracked += 1
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            self.running_var.mul_(1 - momentum).add_(var, alpha=momentum)
        return out


def convert_to_cpu_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d in ``module`` by ``CPUSyncBatchNorm`` with the same state."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, CPUSyncBatchNorm):
            replacement = CPUSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                           child.track_running_stats)
            replacement.load_state_dict(child.state_dict())
            setattr(module, name, replacement)
        else:
            convert_to_cpu_sync_batchnorm(child)
    return module
