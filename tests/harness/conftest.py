import pytest

from htda_bench.zoo import list_cards, load_model


@pytest.fixture(scope="session")
def mnist_zoo_model():
    """The shipped S-SNN MNIST model: a trained model, so attacks have accuracy to lower."""
    names = [card["name"] for card in list_cards() if card["dataset"] == "mnist" and card["family"] == "s-snn"]
    assert names, "the zoo ships an S-SNN MNIST model"
    return names[0], load_model(names[0])
