import pytest
import torch

from dmsl_core.models import UNet, create_models, get_config, list_configs


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_registry_lists_and_creates_by_name():
    names = list_configs()
    assert {"dmsl-paper", "dmsl-compact", "dmsl-tiny"} <= set(names)
    with pytest.raises(ValueError, match="unknown model configuration"):
        get_config("nope")


def test_paper_configuration_parameter_count_and_shapes():
    mb, ml = create_models("dmsl-paper")
    unet = n_params(ml.unet)
    # classic U-Net (64..1024, 1 in, 1 out) + FC 16384 -> 1024 -> 136 / 4
    assert unet == 31_030_593
    assert n_params(ml) == unet + (128 * 128 * 1024 + 1024) + (1024 * 136 + 136)
    assert n_params(mb) == unet + (128 * 128 * 1024 + 1024) + (1024 * 4 + 4)
    assert 47e6 < n_params(ml) < 49e6
    x = torch.rand(1, 1, 128, 128)
    with torch.inference_mode():
        assert ml.unet(x).shape == (1, 1, 128, 128)
        out = ml(x)
    assert out.shape == (1, 136) and float(out.min()) >= 0 and float(out.max()) <= 1
    with torch.inference_mode():
        assert mb(x).shape == (1, 4)


def test_unet_structure_follows_the_paper():
    u = UNet((8, 16, 32))
    convs = [m for m in u.modules() if isinstance(m, torch.nn.Conv2d)]
    # 2 convs per down step (2) + 2 at the bottom + 2 per up step (2) + the final 1x1
    assert len(convs) == 2 * 2 + 2 + 2 * 2 + 1
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) for c in convs[:-1])
    assert convs[-1].kernel_size == (1, 1) and convs[-1].out_channels == 1
    ups = [m for m in u.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(ups) == 2 and all(m.kernel_size == (2, 2) and m.stride == (2, 2) for m in ups)
    pools = [m for m in u.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert pools and pools[0].kernel_size == 2 and pools[0].stride == 2


def test_compact_is_much_smaller_and_seeded_init_is_reproducible():
    a, _ = create_models("dmsl-compact", seed=3)
    b, _ = create_models("dmsl-compact", seed=3)
    assert n_params(a) < 8e6
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_a_wider_landmark_head_leaves_the_boundary_model_as_it_is(tmp_path):
    """``landmark_hidden``: M_l's FC width apart from M_b's (the wide-head experiment of
    docs/experiments.md); the configuration travels in the weights file and builds the same models."""
    import dataclasses

    from dmsl_core.models.weights import load_weights, save_weights
    base = get_config("dmsl-tiny")
    wide = dataclasses.replace(base, name="dmsl-tiny-wide", landmark_hidden=3 * base.hidden)
    mb, ml = create_models(wide, seed=0)
    assert mb.fc1.out_features == base.hidden and ml.fc1.out_features == 3 * base.hidden
    mb0, _ = create_models(base, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(mb.state_dict().values(), mb0.state_dict().values()))
    save_weights(tmp_path / "w", mb, ml, wide, card={"name": "w"})
    cfg, mb2, ml2, _, _ = load_weights(tmp_path / "w")
    assert cfg.landmark_hidden == 3 * base.hidden and ml2.fc1.out_features == 3 * base.hidden
    assert torch.equal(ml2.fc1.weight, ml.fc1.weight)
    x = torch.rand(2, 1, base.input_size, base.input_size)
    assert ml2(x).shape == (2, 136) and mb2(x).shape == (2, 4)
