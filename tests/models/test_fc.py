import pytest
import torch
from torch.nn import functional as F

import seethrough


def test_fc_logits_are_gap_then_linear_and_maps_are_the_cam():
    torch.manual_seed(0)
    model = seethrough.create_model("fc", num_classes=5, backbone="resnet18", output_stride=8).eval()
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    feats = model.backbone(x)
    reference = F.linear(feats.mean(dim=(2, 3)), model.fc.weight, model.fc.bias)
    torch.testing.assert_close(out.logits, reference, rtol=1e-5, atol=1e-5)
    assert out.maps.shape == (2, 5, 8, 8)
    cam = torch.einsum("cd,bdhw->bchw", model.fc.weight, feats)
    torch.testing.assert_close(out.maps, cam)
    # CAM identity: the logit is the mean of the class map plus the bias
    torch.testing.assert_close(out.maps.mean(dim=(2, 3)) + model.fc.bias, out.logits, rtol=1e-5, atol=1e-5)


def test_unknown_model_and_bad_class_count():
    with pytest.raises(ValueError, match="unknown model 'nope'.*fc"):
        seethrough.create_model("nope", num_classes=3)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        seethrough.create_model("fc", num_classes=0)


def test_forward_rejects_non_image_batches():
    model = seethrough.create_model("fc", num_classes=3, backbone="test_efficientnet")
    with pytest.raises(ValueError, match="B×C×H×W"):
        model(torch.randn(3, 32, 32))


def test_unknown_option_names_the_valid_backbone_options():
    with pytest.raises(ValueError, match=r"model 'fc' got unknown options \['slots_per_class'\].*in_chans, output_stride"):
        seethrough.create_model("fc", num_classes=3, backbone="test_efficientnet", slots_per_class=2)
