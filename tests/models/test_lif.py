import torch

from htda_bench.models.lif import PaperLIF


def hand_computed_eq5(currents, decay=0.2, threshold=0.5):
    """h[k+1] = lambda * h[k] * (1 - o[k]) + x[k+1]; o = 1 if h >= V_th."""
    h, o, spikes, potentials = 0.0, 0.0, [], []
    for x in currents:
        h = decay * h * (1 - o) + x
        o = 1.0 if h >= threshold else 0.0
        spikes.append(o)
        potentials.append(h)
    return spikes, potentials


def test_lif_matches_hand_computed_eq5_sequence():
    currents = [0.3, 0.45, 0.1, 0.6, 0.05, 0.45, 0.2, 0.0]
    expected, _ = hand_computed_eq5(currents)
    lif = PaperLIF(learnable=False)
    out = lif(torch.tensor(currents).view(-1, 1))  # multi-step: [T, N]
    assert out.view(-1).tolist() == expected
    assert expected == [0, 1, 0, 1, 0, 0, 0, 0]  # the sequence exercises decay, firing and reset


def test_lif_matches_eq5_with_learned_values():
    lif = PaperLIF(learnable=True)
    with torch.no_grad():
        lif.decay_logit.fill_(0.0)  # lambda = 0.5
        lif.threshold_raw.fill_(0.0)  # V_th = softplus(0) = ln 2
    currents = [0.4, 0.4, 0.3, 0.7, 0.1]
    expected, _ = hand_computed_eq5(currents, decay=0.5, threshold=float(torch.log(torch.tensor(2.0))))
    assert lif(torch.tensor(currents).view(-1, 1)).view(-1).tolist() == expected


def test_rectangular_surrogate_gradient_window():
    lif = PaperLIF(learnable=False)
    x = torch.tensor([[0.4], [0.9], [1.2]], requires_grad=True)  # h - V_th = -0.1, 0.4, 0.7
    lif(x[:1]).sum().backward()
    assert x.grad[0].item() == 1.0  # |h - V_th| < a/2 = 0.5 -> slope 1/a = 1
    lif.reset()
    x2 = torch.tensor([[1.2]], requires_grad=True)
    lif(x2).sum().backward()
    assert x2.grad.item() == 0.0  # outside the window


def test_fixed_lif_has_no_parameters_learnable_has_two():
    assert list(PaperLIF(learnable=False).parameters()) == []
    learnable = PaperLIF(learnable=True)
    assert len(list(learnable.parameters())) == 2
    assert abs(learnable.decay.item() - 0.2) < 1e-6 and abs(learnable.threshold.item() - 0.5) < 1e-6
