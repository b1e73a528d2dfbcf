import torch

from htda_bench.models.attention import attention_map_loss, laplacian_l1


def test_constant_map_has_zero_smoothness_cost():
    constant = torch.full((2, 1, 8, 8), 0.7)
    assert torch.all(laplacian_l1(constant) == 0)
    assert attention_map_loss(constant)["smoothness"] == 0


def test_binary_map_has_higher_variance_than_flat_one():
    binary = torch.zeros(1, 1, 8, 8)
    binary[..., :, :4] = 1.0
    flat = torch.full((1, 1, 8, 8), 0.5)
    # the binarity term is -beta * variance: lower (better) for the binary map
    assert attention_map_loss(binary)["binarity"] < attention_map_loss(flat)["binarity"]


def test_sparser_map_has_lower_sparsity_cost_and_rough_map_higher_smoothness_cost():
    dense = torch.full((1, 1, 8, 8), 0.9)
    sparse = torch.full((1, 1, 8, 8), 0.1)
    assert attention_map_loss(sparse)["sparsity"] < attention_map_loss(dense)["sparsity"]
    checker = (torch.arange(64).view(8, 8) % 2).float().view(1, 1, 8, 8)
    half = torch.zeros(1, 1, 8, 8)
    half[..., :4, :] = 1.0
    assert attention_map_loss(checker)["smoothness"] > attention_map_loss(half)["smoothness"]


def test_total_is_the_sum_of_weighted_terms():
    maps = torch.rand(3, 1, 16, 16)
    terms = attention_map_loss(maps, gamma=0.51, beta=0.40)
    assert torch.isclose(terms["total"], terms["sparsity"] + terms["binarity"] + terms["smoothness"])
