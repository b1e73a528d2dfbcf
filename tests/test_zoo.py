"""Every zoo entry loads, passes its sha256 check and meets the model contract (a loop over the
whole zoo, like timm's model tests); tampered weights are refused."""

import shutil

import pytest
import torch

from htda_bench.data import load_split
from htda_bench.errors import CheckpointError, ConfigError
from htda_bench.metrics.accuracy import clean_accuracy
from htda_bench.zoo import get_card, list_cards, load_model, zoo_dir

CARDS = list_cards()


def test_the_zoo_is_not_empty():
    assert {card["dataset"] for card in CARDS} >= {"mnist"}


@pytest.mark.parametrize("name", [card["name"] for card in CARDS])
def test_zoo_model_loads_and_meets_the_contract(name):
    model = load_model(name)
    card = get_card(name)
    assert not model.training
    shape = (3, 10, 2, 32, 32) if model.config.dynamic_input else (3, model.config.in_channels, 32, 32)
    x = torch.rand(shape, requires_grad=True)
    if model.config.dynamic_input:
        x = (x > 0.8).float().requires_grad_(True)
    logits = model(x)
    assert logits.shape == (3, model.config.n_classes) and torch.isfinite(logits).all()
    assert torch.equal(logits, model(x))
    logits.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert card["family"] in ("s-snn", "htda") and card["weights_sha256"]
    assert card.get("training_note"), "every card says what was trained, for how long and on what"
    if card["family"] == "htda" and model.attention is not None:
        stats = card["attention_stats"]
        assert stats["pixel_std"] >= 0.05, "an HTDA whose map ignores the input is not shipped"


@pytest.mark.parametrize("name", [c["name"] for c in CARDS if c.get("init_from")])
def test_a_warm_started_model_names_a_zoo_source_whose_weights_are_unchanged(name):
    source = get_card(name)["init_from"]
    assert get_card(source["name"])["weights_sha256"] == source["weights_sha256"]


@pytest.mark.parametrize("name", [c["name"] for c in CARDS if c["dataset"] in ("mnist", "cifar10", "nmnist")])
def test_clean_accuracy_on_first_500_matches_the_card(name, data_root):
    model = load_model(name)
    card = get_card(name)
    split = load_split(card["dataset"], "test", data_root)
    assert split.fingerprint == card["test_fingerprint"]
    assert abs(clean_accuracy(model, split, limit=500) - card["test_accuracy"]) <= 2.0


def test_tampered_weights_are_refused(tmp_path):
    card = CARDS[0]
    copy = tmp_path / "zoo"
    (copy / "weights").mkdir(parents=True)
    shutil.copy(zoo_dir() / f"{card['name']}.json", copy / f"{card['name']}.json")
    weights = copy / card["weights"]
    shutil.copy(zoo_dir() / card["weights"], weights)
    load_model(card["name"], zoo=copy)  # the untouched copy loads
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_model(card["name"], zoo=copy)
    weights.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_model(card["name"], zoo=copy)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown model 'no-such-model'"):
        load_model("no-such-model")
