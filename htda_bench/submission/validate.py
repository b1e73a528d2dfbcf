"""Load a submitted model (a factory in a Python file plus a weights file) and check the contract.

Every check that refuses a model raises ``SubmissionError(check, detail)``: one line naming the
check, exit code 2 in the CLI. Checks that only warn add a flag to the report instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..data import get_spec, load_split
from ..errors import HtdaBenchError

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
VALIDATION_EXAMPLES = 4
DEFAULT_EOT_SAMPLES = 8
FLAG_GRADIENT_ZERO = "input_gradient_zero"
FLAG_GRADIENT_DISCONNECTED = "input_gradient_disconnected"


class SubmissionError(HtdaBenchError):
    """A submitted model, its weights or a leaderboard entry fails a check; ``check`` names it."""

    def __init__(self, check: str, detail: str):
        self.check = check
        self.detail = " ".join(str(detail).split())  # one line, whatever the wrapped error printed
        super().__init__(f"check {check} failed: {self.detail}")


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


# -- loading -------------------------------------------------------------------------------------
def load_factory(model_file: str | Path, factory: str = "build_model"):
    """Import ``model_file`` as a fresh module (its folder importable meanwhile); return its factory."""
    path = Path(model_file)
    if not path.is_file():
        raise SubmissionError("model-file", f"{path} does not exist or is not a file")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"htda_submission_{path.stem.replace('-', '_')}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SubmissionError("model-file", f"{path} cannot be imported as Python (use a .py file)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # so the file can import helpers next to it
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # user code: any failure is a refusal, not a crash
        sys.modules.pop(module_name, None)
        raise SubmissionError("model-file", f"importing {path} raised {_error_text(error)}") from error
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    function = getattr(module, factory, None)
    if function is None or not callable(function):
        raise SubmissionError("factory", f"{path} defines no callable {factory!r} (pass it with --factory)")
    return function


def build_from_factory(function, factory: str = "build_model") -> nn.Module:
    try:
        model = function()
    except Exception as error:
        raise SubmissionError("factory", f"{factory}() raised {_error_text(error)}") from error
    if not isinstance(model, nn.Module):
        raise SubmissionError("factory", f"{factory}() returned {type(model).__name__}, not a torch.nn.Module")
    return model


def read_state_dict(weights: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, or of a torch file opened with ``weights_only=True``."""
    path = Path(weights)
    if not path.is_file():
        raise SubmissionError("weights-format", f"weights file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as error:  # safetensors raises its own error types
            raise SubmissionError("weights-format", f"{path} is not a readable safetensors file "
                                                    f"({_error_text(error)})") from error
    elif suffix in TORCH_SUFFIXES:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # UnpicklingError, RuntimeError, EOFError, ...
            raise SubmissionError("weights-format", f"{path} cannot be opened with torch.load(weights_only=True) "
                                                    f"({type(error).__name__}): save model.state_dict() "
                                                    "with torch.save or safetensors") from error
    else:
        raise SubmissionError("weights-format", f"{path}: use a .safetensors file or a torch state dict "
                                                f"({', '.join(TORCH_SUFFIXES)}); other formats are refused")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise SubmissionError("weights-format", f"{path} holds {type(state).__name__}, not a flat state dict "
                                                "of name -> tensor (save model.state_dict())")
    return state


def _listing(names, limit: int = 4) -> str:
    names = sorted(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def load_state(model: nn.Module, state: dict[str, torch.Tensor], weights: str | Path = "weights") -> None:
    """Load ``state`` strictly into ``model``; a mismatch is refused with the keys that differ."""
    expected = model.state_dict()
    problems = []
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing:
        problems.append(f"{len(missing)} missing key(s) {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) {_listing(unexpected)}")
    shapes = [f"{name} {list(state[name].shape)} vs model {list(tensor.shape)}"
              for name, tensor in expected.items() if name in state and state[name].shape != tensor.shape]
    if shapes:
        problems.append(f"shape mismatch {'; '.join(shapes[:3])}" + (" ..." if len(shapes) > 3 else ""))
    if problems:
        raise SubmissionError("weights-match", f"{weights} does not fit the model: {'; '.join(problems)}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise SubmissionError("weights-match", f"{weights} does not fit the model: {error}") from error


def load_submission(model_file, weights, factory: str = "build_model") -> nn.Module:
    """Build the model from the file's factory and load the weights into it (eval mode)."""
    model = build_from_factory(load_factory(model_file, factory), factory)
    load_state(model, read_state_dict(weights), weights)
    return model.eval()


# -- spiking layers and wrappers -----------------------------------------------------------------
def neuron_modules(model: nn.Module) -> list[nn.Module]:
    """SpikingJelly neuron modules (``BaseNode`` or ``SimpleBaseNode``) in module order."""
    from spikingjelly.activation_based import neuron

    return [module for module in model.modules() if isinstance(module, (neuron.BaseNode, neuron.SimpleBaseNode))]


def _fallback_spiking_layers(self) -> list[nn.Module]:
    return neuron_modules(self)


def ensure_spiking_layers(model: nn.Module) -> nn.Module:
    """Give a model without ``spiking_layers()`` one returning its SpikingJelly neurons (the firing
    rate recorder of the runner needs it)."""
    if not callable(getattr(model, "spiking_layers", None)):
        model.spiking_layers = types.MethodType(_fallback_spiking_layers, model)
    return model


class _Wrapper(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = ensure_spiking_layers(model)

    def spiking_layers(self) -> list[nn.Module]:
        return list(self.model.spiking_layers())


class ExpectationOverTransformation(_Wrapper):
    """A stochastic model evaluated by expectation over transformation (EOT): the logits are the
    mean over ``samples`` forward calls, so attacks follow the gradient of the average."""

    def __init__(self, model: nn.Module, samples: int = DEFAULT_EOT_SAMPLES):
        super().__init__(model)
        if samples < 1:
            raise SubmissionError("stochastic", f"EOT needs at least one sample, got {samples}")
        self.samples = int(samples)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.model(images) for _ in range(self.samples)]).mean(0)


class InputConnected(_Wrapper):
    """Adds ``0 * sum(images)`` to the logits of a model whose output does not depend on its input
    through autograd: the numbers are unchanged, and gradient attacks get a (zero) gradient instead
    of an autograd error. Entries evaluated this way carry the ``input_gradient_disconnected`` flag."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.model(images)
        return logits + 0.0 * images.flatten(1).sum(1, keepdim=True)


# -- the contract checks -------------------------------------------------------------------------
@dataclass
class ValidationReport:
    """What the checks found; ``model`` is what gets evaluated (maybe wrapped)."""

    model: nn.Module
    spiking: bool
    n_spiking_layers: int
    flags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def validation_batch(dataset: str, data_root=None) -> tuple[torch.Tensor, torch.Tensor]:
    split = load_split(dataset, "test", data_root)
    count = min(VALIDATION_EXAMPLES, len(split))
    return split.as_float(slice(0, count)), split.labels[:count]


def _forward(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    try:
        with torch.no_grad():
            return model(images)
    except Exception as error:
        raise SubmissionError("forward", f"the model raised {_error_text(error)} on test images "
                                         f"{list(images.shape)} in [0, 1]") from error


def _check_output(output, n_examples: int, n_classes: int, dataset: str) -> None:
    if not isinstance(output, torch.Tensor):
        raise SubmissionError("output-shape", f"the model returned {type(output).__name__}; return a logits tensor "
                                              f"[B, {n_classes}]")
    if tuple(output.shape) != (n_examples, n_classes):
        raise SubmissionError("output-shape", f"output is {list(output.shape)} for {n_examples} {dataset} images; "
                                              f"expected logits [B, n_classes] = [{n_examples}, {n_classes}]")
    if not output.is_floating_point() or not torch.isfinite(output).all():
        raise SubmissionError("output-finite", "output holds non-finite values (nan or inf) or is not floating point")
    rows = output.double()
    if (rows >= 0).all() and ((rows.sum(1) - 1).abs() <= 1e-4).all():
        raise SubmissionError("logits", "every output row is non-negative and sums to 1: return logits, not "
                                        "probabilities (remove the final softmax)")


def _memory_reset(model: nn.Module) -> None:
    from spikingjelly.activation_based import functional

    functional.reset_net(model)


def _check_deterministic(model: nn.Module, images: torch.Tensor, first: torch.Tensor) -> None:
    second = _forward(model, images)
    if torch.allclose(first, second, rtol=1e-5, atol=1e-6):
        return
    _memory_reset(model)
    again = _forward(model, images)
    _memory_reset(model)
    if torch.allclose(again, _forward(model, images), rtol=1e-5, atol=1e-6):
        cause = ("state not reset between calls: call spikingjelly functional.reset_net(self) at the start "
                 "of forward")
    else:
        cause = ("randomness in forward (or state not reset between calls); a model stochastic on purpose "
                 "must say so with --stochastic (it is then evaluated with expectation over transformation)")
    difference = float((first - second).abs().max())
    raise SubmissionError("deterministic", f"two calls on the same input gave different logits "
                                           f"(max difference {difference:.3g}): {cause}")


def _gradient_state(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[int, bool]:
    """(examples whose input gradient is zero or not finite, whether the graph reaches the input)."""
    with torch.enable_grad():
        inputs = images.detach().clone().requires_grad_(True)
        try:
            loss = nn.functional.cross_entropy(model(inputs), labels, reduction="sum")
            (gradient,) = torch.autograd.grad(loss, inputs, allow_unused=True)
        except RuntimeError:  # "element 0 of tensors does not require grad": no path to the input
            return len(images), False
    if gradient is None:
        return len(images), False
    per_example = gradient.flatten(1)
    bad = (~torch.isfinite(per_example).all(1)) | (per_example.abs().sum(1) == 0)
    return int(bad.sum()), True


def _check_spiking_layers(layers: list[nn.Module]) -> None:
    """The runner's firing-rate recorder watches one neuron type whose outputs are [T, B, ...]."""
    kinds = sorted({type(layer).__name__ for layer in layers})
    if len(kinds) > 1:
        raise SubmissionError("spiking-layers", f"the firing-rate recorder needs neurons of one type; found "
                                                f"{', '.join(kinds)}")
    single = [layer for layer in layers if getattr(layer, "step_mode", "m") != "m"]
    if single:
        raise SubmissionError("spiking-layers", f"{len(single)} of {len(layers)} neuron layers are single-step; the "
                                                "firing-rate recorder needs multi-step neurons (step_mode='m', "
                                                "inputs [T, B, ...]): call functional.set_step_mode(model, 'm')")


def validate_model(model: nn.Module, dataset: str, data_root=None, stochastic: bool = False,
                   eot_samples: int = DEFAULT_EOT_SAMPLES, batch=None) -> ValidationReport:
    """Run the contract checks on 4 real test examples; returns the model to evaluate and flags."""
    n_classes = get_spec(dataset).n_classes
    images, labels = batch if batch is not None else validation_batch(dataset, data_root)
    model = ensure_spiking_layers(model.eval())
    model.requires_grad_(False)  # as in the runner: only input gradients are taken
    output = _forward(model, images)
    _check_output(output, len(images), n_classes, dataset)
    if stochastic:
        model = ExpectationOverTransformation(model, eot_samples).eval()
    else:
        _check_deterministic(model, images, output)
    flags, warnings = [], []
    bad, connected = _gradient_state(model, images, labels)
    if bad * 2 > len(images):
        flags.append(FLAG_GRADIENT_ZERO)
        warnings.append(f"the input gradient is zero or not finite for {bad} of {len(images)} examples: "
                        "gradient attacks may overestimate robustness (gradient masking)")
    if not connected:
        flags.append(FLAG_GRADIENT_DISCONNECTED)
        warnings.append("the output does not depend on the input through autograd; evaluated with a zero "
                        "input gradient")
        model = InputConnected(model).eval()
    layers = list(model.spiking_layers())
    _check_spiking_layers(layers)
    if not layers:
        warnings.append("no SpikingJelly neuron modules found: accepted, marked spiking: false")
    return ValidationReport(model=model, spiking=bool(layers), n_spiking_layers=len(layers), flags=flags,
                            warnings=warnings)


def model_time_steps(model: nn.Module) -> int | None:
    """``model.config.time_steps`` or ``model.time_steps`` if it is a whole number, else None."""
    for value in (getattr(getattr(model, "config", None), "time_steps", None), getattr(model, "time_steps", None)):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
