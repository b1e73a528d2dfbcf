"""``htda-bench submit`` and ``leaderboard verify``: the example model lands on a leaderboard with an
entry; each contract violation is refused with its check named, exit code 2 and the leaderboard
untouched; parallel submissions both land; --replace works; verify catches edited numbers."""

import argparse
import hashlib
import json
import multiprocessing
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from htda_bench.cli import submit_cmd
from htda_bench.leaderboard import read_leaderboard
from htda_bench.submission import SubmissionError, read_entry, submit, verify_entry
from htda_bench.submission.validate import load_factory

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "submit" / "my_snn.py"
SUITE = "pgd-mnist"
OVERRIDES = dict(n_examples=16, seeds=[0], eps=[40 / 255])

# A non-spiking model whose forward is filled in per test.
TINY = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32 * 32, 10)

    def forward(self, x):
        return {output}


def build_model():
    return Tiny()
"""


@pytest.fixture(scope="module", autouse=True)
def module_cache(tmp_path_factory):
    """The decoded-data cache of conftest's ``isolated_cache``, also for the module-scoped board."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HTDA_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "decoded-cache"))
        yield


def save_weights(model, path) -> Path:
    save_file({name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}, str(path))
    return Path(path)


def example_weights(folder: Path, seed: int = 0, name: str = "my_snn.safetensors", gain: float = 4.0) -> Path:
    """Random-init weights of the example model (accuracy near chance: plumbing only); ``gain``
    scales the convolutions so that enough neurons fire to carry state and noise to the logits."""
    torch.manual_seed(seed)
    model = load_factory(EXAMPLE)()
    with torch.no_grad():
        for index in (0, 4):
            model.features[index].weight.mul_(gain)
    return save_weights(model, folder / name)


def example_variant(folder: Path, name: str, old: str, new: str) -> Path:
    text = EXAMPLE.read_text()
    assert old in text
    path = folder / f"{name}.py"
    path.write_text(text.replace(old, new))
    return path


def tiny_model(folder: Path, name: str, output: str) -> tuple[Path, Path]:
    path = folder / f"{name}.py"
    path.write_text(TINY.format(output=output))
    torch.manual_seed(0)
    return path, save_weights(load_factory(path)(), folder / f"{name}.safetensors")


def board_at(folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    return {"store_path": folder / "store.sqlite", "leaderboards_dir": folder / "leaderboards"}


def do_submit(board, data_root, model_file, weights, name, **options):
    return submit(model_file, weights, SUITE, name, data_root=data_root, overrides=OVERRIDES, **board, **options)


def snapshot(folder: Path) -> dict:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def shared(tmp_path_factory, data_root):
    """One board holding one honest submission of the example model."""
    folder = tmp_path_factory.mktemp("shared")
    board = board_at(folder)
    weights = example_weights(folder)
    entry = do_submit(board, data_root, EXAMPLE, weights, "my-snn-vgg4", authors="A. Tester",
                      paper_url="https://example.org/paper")
    return {"folder": folder, "board": board, "weights": weights, "entry": entry}


def test_example_submission_lands_with_entry_and_columns(shared):
    board, entry = shared["board"], shared["entry"]
    frame = read_leaderboard(board["leaderboards_dir"], SUITE)
    assert list(frame["model"]) == ["my-snn-vgg4"]
    expected = ["model", "family", "arch", "clean_acc_mean", "clean_acc_std", "robust_acc_eps40_mean",
                "robust_acc_eps40_std", "firing_rate_mean", "firing_rate_std", "macs_m", "params_m", "n_examples",
                "seeds", "dataset_variant", "dataset_fingerprint", "weights_sha256", "protocol_version", "date"]
    assert list(frame.columns) == expected
    row = frame.iloc[0]
    assert row["n_examples"] == 16 and row["seeds"] == "0" and row["firing_rate_mean"] > 0 and row["macs_m"] > 0
    on_disk = read_entry(board["leaderboards_dir"], SUITE, "my-snn-vgg4")
    assert on_disk == json.loads(json.dumps(entry))
    assert entry["authors"] == "A. Tester" and entry["link"] == "https://example.org/paper"
    assert entry["architecture"]["class"] == "MySNN" and "LIFNode" in entry["architecture"]["summary"]
    assert entry["time_steps"] == 4 and abs(entry["parameters"] / 1e6 - row["params_m"]) < 1e-3
    assert entry["spiking"] is True and entry["partial"] is True and entry["flags"] == []
    assert entry["stochastic"] is False and entry["clean_acc"] == row["clean_acc_mean"]
    assert entry["robust_acc"]["pgd@eps40"]["mean"] == row["robust_acc_eps40_mean"]
    assert entry["firing_rate"] == row["firing_rate_mean"] and entry["macs_m"] == row["macs_m"]
    assert entry["overrides"] == {"n_examples": 16, "seeds": [0], "eps": [40 / 255]}
    assert entry["weights_sha256"] == hashlib.sha256(shared["weights"].read_bytes()).hexdigest()
    assert row["weights_sha256"] == entry["evaluated_sha256"][:16]
    reference = entry["verify_reference"]
    assert reference["n_examples"] == 16 and len(reference["outcomes"]["clean"]["0"]) == 16
    assert reference["clean_acc"] == entry["clean_acc"]
    assert entry["config_hash"] and entry["protocol_version"] == "1" and entry["htda_bench_version"]


def _format_cases(folder: Path):
    """(model file, weights, factory, expected check, fragment) of each refused submission."""
    good = example_weights(folder)
    torch.manual_seed(0)
    state = load_factory(EXAMPLE)().state_dict()
    save_file({k: v for k, v in state.items() if k != "readout.bias"}, str(folder / "missing.safetensors"))
    save_file({**state, "extra.weight": torch.zeros(3)}, str(folder / "extra.safetensors"))
    save_file({**state, "readout.weight": torch.zeros(10, 512)}, str(folder / "shape.safetensors"))
    torch.save({"w": Fraction(1, 2)}, folder / "pickled.pt")
    torch.save([torch.zeros(2)], folder / "list.pt")
    (folder / "weights.npy").write_bytes(b"\x93NUMPY")
    (folder / "broken.py").write_text("raise ImportError('no such helper')\n")
    (folder / "not_module.py").write_text("def build_model():\n    return {'not': 'a module'}\n")
    return [
        (folder / "absent.py", good, "build_model", "model-file", "does not exist"),
        (folder / "broken.py", good, "build_model", "model-file", "no such helper"),
        (EXAMPLE, good, "make_it", "factory", "make_it"),
        (folder / "not_module.py", good, "build_model", "factory", "not a torch.nn.Module"),
        (EXAMPLE, folder / "missing.safetensors", "build_model", "weights-match", "missing key(s) readout.bias"),
        (EXAMPLE, folder / "extra.safetensors", "build_model", "weights-match", "unexpected key(s) extra.weight"),
        (EXAMPLE, folder / "shape.safetensors", "build_model", "weights-match", "shape mismatch readout.weight"),
        (EXAMPLE, folder / "pickled.pt", "build_model", "weights-format", "weights_only=True"),
        (EXAMPLE, folder / "list.pt", "build_model", "weights-format", "not a flat state dict"),
        (EXAMPLE, folder / "weights.npy", "build_model", "weights-format", "other formats are refused"),
    ]


def _output_cases(folder: Path):
    cases = []
    for name, output, check, fragment in [
        ("shape", "self.fc(x.flatten(1))[:, :5]", "output-shape", "expected logits [B, n_classes] = [4, 10]"),
        ("nonfinite", "self.fc(x.flatten(1)) * float('nan')", "output-finite", "non-finite"),
        ("probabilities", "self.fc(x.flatten(1)).softmax(1)", "logits", "not probabilities"),
        ("noisy", "self.fc(x.flatten(1)) + torch.randn(x.shape[0], 10)", "deterministic", "--stochastic"),
    ]:
        model_file, weights = tiny_model(folder, name, output)
        cases.append((model_file, weights, "build_model", check, fragment))
    no_reset = example_variant(folder, "no_reset", "functional.reset_net(self)", "pass")
    cases.append((no_reset, example_weights(folder), "build_model", "deterministic", "state not reset"))
    mixed = example_variant(folder, "mixed", "neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), "
                            "detach_reset=True),\n            layer.MaxPool2d(2),  # 8",
                            "neuron.IFNode(surrogate_function=surrogate.ATan(), detach_reset=True),\n"
                            "            layer.MaxPool2d(2),  # 8")
    cases.append((mixed, example_weights(folder), "build_model", "spiking-layers", "IFNode, LIFNode"))
    single = example_variant(folder, "single", 'functional.set_step_mode(self, "m")',
                             'functional.set_step_mode(self, "m"); self.features[2].step_mode = "s"')
    cases.append((single, example_weights(folder), "build_model", "spiking-layers", "single-step"))
    return cases


@pytest.mark.parametrize("kind", ["format", "output"])
def test_refused_submissions_name_the_check_and_leave_the_board_unchanged(shared, data_root, tmp_path, kind):
    cases = (_format_cases if kind == "format" else _output_cases)(tmp_path)
    before = snapshot(shared["folder"] / "leaderboards")
    for model_file, weights, factory, check, fragment in cases:
        with pytest.raises(SubmissionError) as error:
            do_submit(shared["board"], data_root, model_file, weights, "refused-model", factory=factory)
        assert error.value.check == check, (model_file, str(error.value))
        assert error.value.exit_code == 2
        message = str(error.value)
        assert message.startswith(f"check {check} failed: ") and "\n" not in message
        assert fragment in message, message
        assert snapshot(shared["folder"] / "leaderboards") == before


def test_cli_submit_refusal_is_one_line_and_exit_code_2(shared, data_root, tmp_path, monkeypatch, capsys):
    from htda_bench.cli import main as cli_main

    model_file, weights = tiny_model(tmp_path, "probabilities", "self.fc(x.flatten(1)).softmax(1)")
    if submit_cmd not in cli_main.SUBCOMMAND_MODULES:  # until submit is wired into the CLI
        monkeypatch.setattr(cli_main, "SUBCOMMAND_MODULES", (*cli_main.SUBCOMMAND_MODULES, submit_cmd))
    before = snapshot(shared["folder"] / "leaderboards")
    code = cli_main.main(["submit", "--model-file", str(model_file), "--weights", str(weights), "--suite", SUITE,
                          "--name", "cli-model", "--n-examples", "16", "--seeds", "0", "--eps", "40/255",
                          "--out", str(shared["board"]["store_path"]),
                          "--leaderboards", str(shared["board"]["leaderboards_dir"]), "--data-root", str(data_root)])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "check logits failed" in lines[0]
    assert snapshot(shared["folder"] / "leaderboards") == before


def test_cli_handler_submits_and_refuses_a_taken_name(data_root, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    submit_cmd.register(parser.add_subparsers(dest="command"))
    board = board_at(tmp_path)
    weights = example_weights(tmp_path)
    argv = ["submit", "--model-file", str(EXAMPLE), "--weights", str(weights), "--suite", SUITE, "--name",
            "cli-snn", "--n-examples", "16", "--seeds", "0", "--eps", "40/255", "--quiet",
            "--out", str(board["store_path"]), "--leaderboards", str(board["leaderboards_dir"]),
            "--data-root", str(data_root)]
    args = parser.parse_args(argv)
    assert args.handler(args) == 0
    assert "cli-snn: clean" in capsys.readouterr().out
    with pytest.raises(SubmissionError, match="already on the pgd-mnist leaderboard"):
        args.handler(parser.parse_args(argv))


@pytest.mark.parametrize("variant,flags", [
    ("images * 0 + images.detach()", ["input_gradient_zero"]),
    ("images.detach()", ["input_gradient_zero", "input_gradient_disconnected"]),
])
def test_zero_input_gradient_is_a_flag_not_a_refusal(data_root, tmp_path, variant, flags):
    model_file = example_variant(tmp_path, "masked", "x = (images - MNIST_MEAN)", f"x = ({variant} - MNIST_MEAN)")
    entry = do_submit(board_at(tmp_path), data_root, model_file, example_weights(tmp_path), "masked-snn")
    assert entry["flags"] == flags and entry["spiking"] is True


def test_stochastic_model_needs_the_flag_and_is_evaluated_with_eot(data_root, tmp_path):
    model_file = example_variant(tmp_path, "noisy_snn", "x = (images - MNIST_MEAN) / MNIST_STD",
                                 "x = (images + 0.3 * torch.randn_like(images) - MNIST_MEAN) / MNIST_STD")
    weights, board = example_weights(tmp_path), board_at(tmp_path)
    with pytest.raises(SubmissionError, match="randomness") as error:
        do_submit(board, data_root, model_file, weights, "noisy-snn")
    assert error.value.check == "deterministic"
    entry = do_submit(board, data_root, model_file, weights, "noisy-snn", stochastic=True, eot_samples=2)
    assert entry["stochastic"] is True and entry["eot_samples"] == 2
    assert entry["architecture"]["class"] == "MySNN"  # the submitted model, not the EOT wrapper


def test_model_without_spiking_layers_is_marked_not_spiking(data_root, tmp_path):
    model_file, weights = tiny_model(tmp_path, "plain", "self.fc((x - 0.13).flatten(1))")
    entry = do_submit(board_at(tmp_path), data_root, model_file, weights, "plain-ann")
    assert entry["spiking"] is False and entry["firing_rate"] is None


def _submit_in_child(board, data_root, weights, name):
    torch.set_num_threads(1)
    do_submit(board, data_root, EXAMPLE, weights, name)


def test_parallel_submissions_both_land(data_root, tmp_path):
    board = board_at(tmp_path)
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_submit_in_child,
                                args=(board, data_root, example_weights(tmp_path, seed, f"w{seed}.safetensors"), name))
                for seed, name in enumerate(["parallel-a", "parallel-b"])]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=600)
    assert [child.exitcode for child in children] == [0, 0]
    frame = read_leaderboard(board["leaderboards_dir"], SUITE)
    assert sorted(frame["model"]) == ["parallel-a", "parallel-b"]
    for name in ("parallel-a", "parallel-b"):
        assert read_entry(board["leaderboards_dir"], SUITE, name)["name"] == name


def test_replace(data_root, tmp_path):
    board = board_at(tmp_path)
    first = do_submit(board, data_root, EXAMPLE, example_weights(tmp_path, 0, "a.safetensors"), "replaced")
    second_weights = example_weights(tmp_path, 1, "b.safetensors")
    before = snapshot(board["leaderboards_dir"])
    with pytest.raises(SubmissionError, match="--replace") as error:
        do_submit(board, data_root, EXAMPLE, second_weights, "replaced")
    assert error.value.check == "name" and snapshot(board["leaderboards_dir"]) == before
    second = do_submit(board, data_root, EXAMPLE, second_weights, "replaced", replace=True)
    assert second["weights_sha256"] != first["weights_sha256"]
    frame = read_leaderboard(board["leaderboards_dir"], SUITE)
    assert list(frame["model"]) == ["replaced"]
    assert frame.iloc[0]["weights_sha256"] == second["evaluated_sha256"][:16]
    assert read_entry(board["leaderboards_dir"], SUITE, "replaced")["weights_sha256"] == second["weights_sha256"]


def _verify_cli(board, data_root, *extra):
    parser = argparse.ArgumentParser()
    submit_cmd.register_verify(parser.add_subparsers(dest="leaderboard_command"))
    args = parser.parse_args(["verify", SUITE, "--leaderboards", str(board["leaderboards_dir"]), "--quiet",
                              "--data-root", str(data_root), *extra])
    return args.handler(args)


def test_verify_passes_for_an_honest_entry_and_fails_for_edited_numbers(data_root, tmp_path, capsys):
    board = board_at(tmp_path)
    weights = example_weights(tmp_path)
    do_submit(board, data_root, EXAMPLE, weights, "honest")
    result = verify_entry(SUITE, "honest", board["leaderboards_dir"], n_examples=200, data_root=data_root)
    assert result.ok and result.n_examples == 16, result.checks
    assert _verify_cli(board, data_root, "--name", "honest") == 0
    assert "PASS" in capsys.readouterr().out

    # consistent forgery: flipped outcomes, reference and headline numbers made to agree with them
    path = board["leaderboards_dir"] / "entries" / SUITE / "honest.json"
    honest = path.read_text()
    entry = json.loads(honest)
    reference = entry["verify_reference"]
    for condition, per_seed in reference["outcomes"].items():
        per_seed["0"] = "".join("1" if bit == "0" else "0" for bit in per_seed["0"])
        accuracy = 100.0 * per_seed["0"].count("1") / 16
        if condition == "clean":
            reference["clean_acc"] = entry["clean_acc"] = accuracy
        else:
            reference["robust_acc"][condition] = entry["robust_acc"][condition]["mean"] = accuracy
    path.write_text(json.dumps(entry))
    result = verify_entry(SUITE, "honest", board["leaderboards_dir"], data_root=data_root)
    failed = {check.name for check in result.checks if not check.ok}
    assert not result.ok and "re-run clean (16 examples)" in failed and "entry clean = leaderboard" in failed
    assert _verify_cli(board, data_root, "--name", "honest", "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report[0]["ok"] is False

    # changed weights: the hash check fails and nothing is re-run
    path.write_text(honest)
    shutil.copy(example_weights(tmp_path, 5, "other.safetensors"), weights)
    result = verify_entry(SUITE, "honest", board["leaderboards_dir"], data_root=data_root)
    failed = {check.name for check in result.checks if not check.ok}
    assert "weights sha256" in failed and "re-run" in failed and not result.ok
