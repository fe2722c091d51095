import numpy as np
import torch

from dmsl_core.losses import boundary_loss, landmark_loss, mask_loss


def test_landmark_loss_is_eq2():
    t = torch.zeros(2, 136)
    p = torch.zeros(2, 136)
    p[0, 0], p[0, 1] = 0.3, 0.4        # point 0 of image 0 off by (0.3, 0.4): squared distance 0.25
    assert torch.isclose(landmark_loss(p, t), torch.tensor((0.25 / 68) / 2))
    valid = torch.ones(2, 68, dtype=torch.bool)
    valid[0, 1:] = False               # only point 0 exists in image 0
    assert torch.isclose(landmark_loss(p, t, valid), torch.tensor((0.25 / 1) / 2))


def test_boundary_and_mask_losses():
    assert torch.isclose(boundary_loss(torch.tensor([[0.5, 0.5, 0.5, 0.5]]), torch.zeros(1, 4)), torch.tensor(0.25))
    logits = torch.tensor([[[[0.0]]]])
    assert torch.isclose(mask_loss(logits, torch.ones_like(logits)), torch.tensor(np.log(2.0), dtype=torch.float32))
