"""CA-Stream's Score-CAM (``scorecam-original``) and its per-backbone CAM layer rule."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import seethrough
from seethrough.explanations.posthoc import cam_maps, castream_target_layer

SIZE, CLASSES = 12, 3
MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.3, 0.25)


class TinyConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(4, 5, 3, stride=3, padding=1), nn.ReLU())
        self.classifier = nn.Linear(5 * (SIZE // 3) ** 2, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def by_hand(model, images, targets):
    """The paper's / CA-Stream's recipe as a plain loop: per image and channel, upsample
    (align_corners=True), min-max (+eps), mask the *pixels*, softmax probability of the target,
    then ReLU of the weighted channel sum."""
    mean, std = torch.tensor(MEAN)[:, None, None], torch.tensor(STD)[:, None, None]
    maps = []
    for b in range(images.shape[0]):
        with torch.no_grad():
            activation = model.features(images[b:b + 1])[0]
            total = torch.zeros(activation.shape[1:])
            for k in range(activation.shape[0]):
                up = nn.UpsamplingBilinear2d(size=(SIZE, SIZE))(activation[k][None, None])[0, 0]
                up = (up - up.min()) / (up.max() - up.min() + 2.220446049250313e-16)
                masked = ((images[b] * std + mean) * up - mean) / std
                weight = torch.softmax(model(masked[None]), dim=1)[0, targets[b]]
                total += weight * activation[k]
        maps.append(total.clamp(min=0))
    return torch.stack(maps)


def test_scorecam_original_equals_a_hand_written_loop_and_differs_from_the_package():
    torch.manual_seed(0)
    model = TinyConvNet().eval()
    images = torch.randn(2, 3, SIZE, SIZE)
    targets = torch.tensor([2, 0])
    ours = seethrough.explain(model, images, targets, method="scorecam-original", normalize="none", upsample="none",
                              target_layer="features.3", mean=MEAN, std=STD, batch_size=3)
    torch.testing.assert_close(ours, by_hand(model, images, targets), rtol=1e-4, atol=1e-6)
    package = cam_maps(model, images, targets, method="scorecam", target_layer="features.3")
    assert not torch.allclose(ours / ours.amax(dim=(1, 2), keepdim=True),
                              package / package.amax(dim=(1, 2), keepdim=True), atol=1e-3)


def test_castream_layer_rule_is_convnext_last_fc2_and_backbone_otherwise():
    convnext = seethrough.create_model("fc", num_classes=CLASSES, backbone="test_convnext").eval()
    name, transform = castream_target_layer(convnext)
    stages = convnext.backbone.body.stages
    assert name == f"backbone.body.stages.{len(stages) - 1}.blocks.{len(stages[-1].blocks) - 1}.mlp.fc2"
    torch.manual_seed(0)
    images = torch.randn(2, 3, 96, 96)
    targets = torch.tensor([0, 1])
    maps = seethrough.explain(convnext, images, targets, method="gradcam", target_layer="castream",
                              upsample="none", normalize="none")
    explicit = cam_maps(convnext, images, targets, method="gradcam", target_layer=name, reshape_transform=transform)
    torch.testing.assert_close(maps, explicit)
    assert maps.shape == (2, *convnext.backbone(images).shape[-2:])         # channels-last fc2 output permuted
    default = seethrough.explain(convnext, images, targets, method="gradcam", upsample="none")   # min-maxed
    peak = maps.amax(dim=(1, 2), keepdim=True)
    assert bool((peak > 0).all()) and not torch.allclose(maps / peak, default, atol=1e-2)
    resnet = seethrough.create_model("fc", num_classes=CLASSES, backbone="test_resnet")
    assert castream_target_layer(resnet) == ("backbone", None)


def test_scorecam_original_errors_name_the_option():
    model = TinyConvNet().eval()
    with pytest.raises(ValueError, match="scorecam-original: batch_size must be a positive int"):
        seethrough.explain(model, torch.randn(1, 3, SIZE, SIZE), [0], method="scorecam-original", batch_size=0)
