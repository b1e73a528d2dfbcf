"""Training lowers the loss on real data, resumes exactly, and writes weights plus a card."""

import json

import pytest
import torch

from htda_bench.errors import ConfigError
from htda_bench.models.checkpoint import load_weights
from htda_bench.train import TrainConfig, train
from htda_bench.train import engine
from htda_bench.train.engine import learning_rate, temperature, training_loss
from htda_bench.utils import sha256_file


def tiny_config(**overrides):
    settings = dict(family="htda", dataset="mnist", epochs=1, batch_size=16, train_subset=64,
                    eval_subset=64, threads=1, warmup_fraction=0.25, precision="fp32")
    settings.update(overrides)
    return TrainConfig(**settings)


def test_a_few_steps_on_a_real_batch_lower_the_loss(mnist_test):
    from htda_bench.models import create_model

    torch.manual_seed(0)
    model = create_model("s-snn", "vgg32c", "mnist").train()
    images, labels = mnist_test.as_float(slice(0, 32)), mnist_test.labels[:32]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    config = TrainConfig(family="s-snn")
    losses = []
    for _ in range(8):
        loss = training_loss(model, model(images), labels, config, 0, 1)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]  # measured here: 2.31 -> 1.94 in 8 steps


def test_htda_loss_includes_the_attention_term(mnist_test):
    from htda_bench.models import create_model

    model = create_model("htda", "vgg32c", "mnist").train()
    logits = model(mnist_test.as_float(slice(0, 4)))
    terms = training_loss(model, logits, mnist_test.labels[:4], TrainConfig(family="htda"), 0, 1)
    alpha = 0.01  # the paper's value for MNIST
    assert torch.isclose(terms["total"], alpha * terms["ce"] + (1 - alpha) * terms["attention"])
    late_start = TrainConfig(family="htda", attention_loss_start=0.5)
    assert torch.equal(training_loss(model, logits, mnist_test.labels[:4], late_start, 0, 10)["total"],
                       terms["ce"])


def test_schedules():
    config = TrainConfig(lr=0.1, warmup_fraction=0.1)
    assert learning_rate(config, 0, 100) == pytest.approx(0.01)
    assert learning_rate(config, 9, 100) == pytest.approx(0.1)
    assert learning_rate(config, 99, 100) < 0.001
    assert temperature(config, 0, 100) == 1.0 and temperature(config, 99, 100) == 6.0


def test_resume_gives_the_uninterrupted_result(data_root, tmp_path, monkeypatch):
    config = tiny_config()
    uninterrupted = train(config, tmp_path / "a", data_root, show_progress=False, checkpoint_every=1)
    stopped = train(config, tmp_path / "b", data_root, show_progress=False, checkpoint_every=1, stop_after=2)
    assert stopped["status"] == "stopped" and stopped["iteration"] == 2
    with pytest.raises(ConfigError, match="--resume"):
        train(config, tmp_path / "b", data_root, show_progress=False)
    monkeypatch.setattr(engine, "git_commit", lambda: "resumed-from-other-code")
    resumed = train(config, tmp_path / "b", data_root, resume=True, show_progress=False, checkpoint_every=1)
    assert resumed["git_commit"] == uninterrupted["git_commit"] != "resumed-from-other-code"
    assert resumed["git_commits"] == [uninterrupted["git_commit"], "resumed-from-other-code"]
    assert resumed["history"] == uninterrupted["history"]
    assert resumed["test_accuracy"] == uninterrupted["test_accuracy"]
    first = load_weights(tmp_path / "a" / "model.safetensors").state_dict()
    second = load_weights(tmp_path / "b" / "model.safetensors").state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_resume_with_other_settings_is_refused(data_root, tmp_path):
    train(tiny_config(), tmp_path, data_root, show_progress=False, checkpoint_every=1, stop_after=1)
    with pytest.raises(ConfigError, match="other settings"):
        train(tiny_config(lr=0.5), tmp_path, data_root, resume=True, show_progress=False)


def test_card_records_provenance_and_matches_the_weights(data_root, tmp_path):
    card = train(tiny_config(), tmp_path, data_root, show_progress=False)
    on_disk = json.loads((tmp_path / "card.json").read_text())
    assert on_disk == card
    assert card["weights_sha256"] == sha256_file(tmp_path / "model.safetensors")
    for key in ("dataset_variant", "test_fingerprint", "git_commit", "package_versions", "hardware",
                "wall_time_s", "test_accuracy", "final_train_accuracy", "config_hash"):
        assert card[key] not in (None, ""), key
    assert set(card["attention_stats"]) >= {"pixel_std", "object_background_ratio"}
    assert card["init_from"] is None
    assert all(0.0 <= entry["attention_pixel_std"] <= 0.5 for entry in card["history"])
    model = load_weights(tmp_path / "model.safetensors")
    assert float(model.temperature) == 6.0 and not model.training


def test_warm_start_copies_the_extractor_and_adapts_the_decoder():
    from htda_bench.models import create_model
    from htda_bench.train.warm_start import warm_start
    from htda_bench.zoo import load_model

    source = load_model("s-snn-vgg32c-mnist")
    torch.manual_seed(0)
    model = create_model("htda", "vgg32c", "mnist", attention_source="layer2", decoder_steps="attended")
    attention_before = model.attention.state_dict()
    record = warm_start(model, "s-snn-vgg32c-mnist")
    assert torch.equal(model.convs[3].weight, source.convs[3].weight.float())
    assert torch.equal(model.norms[0].running_var, source.norms[0].running_var.float())
    # the attended decoder reads steps 2..5: the source decoder's last 4 x 10 columns
    assert torch.equal(model.decoder.weight, source.decoder.weight[:, -40:].float())
    assert all(torch.equal(v, model.attention.state_dict()[k]) for k, v in attention_before.items())
    assert record["adapted"] == ["decoder.weight"] and record["initialised_at_random"] == ["attention"]
    assert record["weights_sha256"] == source.zoo_card["weights_sha256"]


def test_warm_start_from_another_dataset_is_refused():
    from htda_bench.models import create_model
    from htda_bench.train.warm_start import warm_start

    with pytest.raises(ConfigError, match="same arch and dataset"):
        warm_start(create_model("htda", "vgg32c", "mnist"), "s-snn-vgg32c-cifar10")


def test_a_warm_started_run_records_its_source_through_a_resume(data_root, tmp_path):
    config = tiny_config(init_from="s-snn-vgg32c-mnist", train_subset=32)
    train(config, tmp_path, data_root, show_progress=False, checkpoint_every=1, stop_after=1)
    card = train(config, tmp_path, data_root, resume=True, show_progress=False)
    assert card["init_from"]["name"] == "s-snn-vgg32c-mnist" and card["init_from"]["copied"] > 50


def test_settings_without_init_from_keep_the_hash_they_had_before_it_existed():
    # the CIFAR-10 HTDA recipe of 2026-12-05 (before init_from), whose runs recorded this hash
    config = TrainConfig(family="htda", arch="vgg32c", dataset="cifar10", epochs=8, batch_size=100, lr=0.1,
                         warmup_fraction=0.03, precision="fp32", grad_clip=1.0, alpha=0.1, ce_weight="one",
                         model_options={"attention_source": "layer2", "window_norm": "first-window",
                                        "decoder_steps": "attended"},
                         recipe="zoo/recipes/htda-vgg32c-cifar10.yaml")
    assert config.hash() == "3ddfed2d66119fc7"
    assert TrainConfig(**{**config.to_dict(), "init_from": "s-snn-vgg32c-cifar10"}).hash() != config.hash()
