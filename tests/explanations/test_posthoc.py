"""CAM explainers through grad-cam: raw maps equal an independent gradient computation."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import seethrough
from seethrough.explanations.posthoc import CAM_METHODS, cam_maps, default_target_layer, resolve_target_layer

SIZE, CLASSES = 16, 3


class TinyConvNet(nn.Module):
    """conv → ReLU → conv (target) → ReLU → flatten → linear: gradients vary over positions."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(6, 5, 3, stride=2, padding=1), nn.ReLU())
        self.classifier = nn.Linear(5 * (SIZE // 2) ** 2, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class TinyTokenNet(nn.Module):
    """A ViT-like model: patch embedding, one class token, a token-wise block, mean pooling."""

    def __init__(self, patch: int = 4, dim: int = 8) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.block = nn.Sequential(nn.Linear(dim, dim), nn.GELU())
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        tokens = self.block(tokens)
        return self.head(tokens[:, 1:].pow(2).mean(dim=1))


def _model(cls=TinyConvNet) -> nn.Module:
    torch.manual_seed(0)
    return cls().eval()


def _images(batch: int = 3) -> torch.Tensor:
    return torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def _direct(model: nn.Module, layer: nn.Module, images: torch.Tensor, targets: torch.Tensor):
    """Activations A of ``layer`` and ∂(Σ_b y_{b,c_b})/∂A by plain autograd (no grad-cam)."""
    captured = []
    handle = layer.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        logits = model(images)
    finally:
        handle.remove()
    activations = captured[0]
    grads, = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), activations)
    return activations.detach(), grads


def _assert_no_hooks(model: nn.Module) -> None:
    for name, module in model.named_modules():
        hooks = (module._forward_hooks, module._forward_pre_hooks, module._backward_hooks,
                 getattr(module, "_backward_pre_hooks", {}))
        assert all(len(h) == 0 for h in hooks), f"hook left on {name or 'the model'}"


def test_gradcam_equals_direct_gradient_computation():
    model, images, targets = _model(), _images(), torch.tensor([0, 2, 1])
    layer = model.features[2]
    A, G = _direct(model, layer, images, targets)
    expected = torch.relu((G.mean(dim=(2, 3), keepdim=True) * A).sum(dim=1))
    got = cam_maps(model, images, targets, method="gradcam")   # default layer: the last Conv2d
    assert got.shape == (3, SIZE // 2, SIZE // 2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert (expected > 0).any() and (expected == 0).any()   # the ReLU matters in this case
    via_api = seethrough.explain(model, images, targets, method="gradcam", normalize="none", upsample="none")
    torch.testing.assert_close(via_api, expected, rtol=1e-5, atol=1e-6)


def test_hirescam_and_layercam_equal_direct_computation():
    model, images, targets = _model(), _images(), torch.tensor([1, 1, 0])
    A, G = _direct(model, model.features[2], images, targets)
    torch.testing.assert_close(cam_maps(model, images, targets, method="hirescam"),
                               torch.relu((G * A).sum(dim=1)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cam_maps(model, images, targets, method="layercam"),
                               torch.relu((torch.relu(G) * A).sum(dim=1)), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(cam_maps(model, images, targets, method="hirescam"),
                              cam_maps(model, images, targets, method="gradcam"))


def test_in_place_operation_after_the_target_layer_does_not_change_the_map():
    model, images, targets = _model(), _images(), torch.tensor([0, 2, 1])
    expected = cam_maps(model, images, targets, method="gradcam")
    model.features[3] = nn.ReLU(inplace=True)   # overwrites the conv output the CAM explains
    torch.testing.assert_close(cam_maps(model, images, targets, method="gradcam"), expected)
    torch.testing.assert_close(cam_maps(model, images, targets, method="eigencam"),
                               cam_maps(_model(), images, targets, method="eigencam"))


def test_maps_differ_per_target_class():
    model, images = _model(), _images()
    maps = [cam_maps(model, images, torch.full((3,), c), method="gradcam") for c in range(CLASSES)]
    assert not torch.allclose(maps[0], maps[1])


def test_gradcam_of_fc_baseline_is_its_cam():
    """GAP → linear: ∂z_c/∂A_k(i,j) = w_ck / hw, so Grad-CAM = ReLU(CAM) / hw on the backbone output."""
    torch.manual_seed(0)
    model = seethrough.create_model("fc", num_classes=CLASSES, backbone="test_efficientnet", output_stride=8)
    images = torch.randn(2, 3, 32, 32)
    targets = torch.tensor([0, 2])
    assert default_target_layer(model) == "backbone"
    with torch.no_grad():
        cam = model.eval()(images).maps[torch.arange(2), targets]
    got = cam_maps(model, images, targets, method="gradcam")
    assert got.shape == cam.shape == (2, 4, 4)
    torch.testing.assert_close(got, torch.relu(cam) / cam[0].numel(), rtol=1e-4, atol=1e-6)


def test_works_under_no_grad_with_frozen_parameters_and_leaves_grads_alone():
    model, images, targets = _model(), _images(), torch.tensor([0, 1, 2])
    expected = cam_maps(model, images, targets, method="gradcam")
    for p in model.features.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        got = cam_maps(model, images, targets, method="gradcam")
    torch.testing.assert_close(got, expected)
    assert [p.requires_grad for p in model.parameters()] == [False] * 4 + [True] * 2
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("method", sorted(CAM_METHODS))
def test_every_method_releases_hooks_restores_flags_and_returns_raw_maps(method):
    model, images = _model(), _images(2)
    model.train()
    model.features[0].eval()   # a submodule kept in eval mode on purpose
    flags = [m.training for m in model.modules()]
    before = dict(model.named_modules())
    maps = cam_maps(model, images, torch.tensor([0, 1]), method=method, batch_size=4)
    assert maps.shape == (2, SIZE // 2, SIZE // 2) and maps.dtype == torch.float32
    assert torch.isfinite(maps).all() and (maps >= 0).all()   # after the method's ReLU
    assert [m.training for m in model.modules()] == flags
    assert dict(model.named_modules()) == before   # AblationCAM swapped its layer back
    _assert_no_hooks(model)


def test_ablationcam_failure_still_restores_the_model():
    model, images = _model(), _images(2)
    calls = {"n": 0}

    def fail_on_ablation(module, args):
        calls["n"] += 1
        if calls["n"] > 2:   # 1: explain's forward; 2: the package's score pass; then ablation batches
            raise RuntimeError("boom")

    handle = model.classifier.register_forward_pre_hook(fail_on_ablation)
    with pytest.raises(RuntimeError, match="boom"):
        cam_maps(model, images, torch.tensor([0, 1]), method="ablationcam")
    handle.remove()
    assert isinstance(model.features[2], nn.Conv2d)
    _assert_no_hooks(model)


def test_scorecam_batch_size_does_not_change_maps_and_bars_are_hidden(capsys):
    model, images, targets = _model(), _images(2), torch.tensor([2, 0])
    small = cam_maps(model, images, targets, method="scorecam", batch_size=2)
    large = cam_maps(model, images, targets, method="scorecam", batch_size=16)
    torch.testing.assert_close(small, large, rtol=1e-5, atol=1e-7)
    assert "%|" not in capsys.readouterr().err
    cam_maps(model, images, targets, method="scorecam", progress=True)
    assert "%|" in capsys.readouterr().err


def test_target_layer_by_name_module_and_errors():
    model, images, targets = _model(), _images(2), torch.tensor([0, 1])
    by_name = cam_maps(model, images, targets, target_layer="features.0")
    by_module = cam_maps(model, images, targets, target_layer=model.features[0])
    assert by_name.shape == (2, SIZE, SIZE)
    torch.testing.assert_close(by_name, by_module)
    assert resolve_target_layer(model, None) == ("features.2", model.features[2])
    with pytest.raises(ValueError, match="no module named 'feature.2'.*features.2"):
        cam_maps(model, images, targets, target_layer="feature.2")
    with pytest.raises(ValueError, match="not a submodule"):
        cam_maps(model, images, targets, target_layer=nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="unknown CAM method"):
        cam_maps(model, images, targets, method="gradcam+++")
    with pytest.raises(ValueError, match="batch_size"):
        cam_maps(model, images, targets, method="scorecam", batch_size=0)


def test_token_layer_is_reshaped_to_its_grid():
    model, images, targets = _model(TinyTokenNet), _images(2), torch.tensor([0, 2])
    A, G = _direct(model, model.block, images, targets)   # B×(1+16)×D tokens
    grid = lambda t: t[:, 1:].transpose(1, 2).reshape(2, -1, 4, 4)   # noqa: E731
    expected = torch.relu((grid(G).mean(dim=(2, 3), keepdim=True) * grid(A)).sum(dim=1))
    got = cam_maps(model, images, targets, method="gradcam", target_layer="block")
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    ablation = cam_maps(model, images, targets, method="ablationcam", target_layer="block")
    assert ablation.shape == (2, 4, 4) and torch.isfinite(ablation).all()
    _assert_no_hooks(model)


def test_smoothing_options():
    model, images, targets = _model(), _images(2), torch.tensor([0, 1])
    plain = cam_maps(model, images, targets, method="gradcam")
    eigen = cam_maps(model, images, targets, method="gradcam", eigen_smooth=True)
    assert eigen.shape == plain.shape and not torch.allclose(eigen, plain)
    # aug_smooth: mean over {identity, h-flip} × brightness {0.9, 1, 1.1} of per-image min-max maps
    smoothed = cam_maps(model, images, targets, method="gradcam", aug_smooth=True)
    expected = []
    for flip in (False, True):
        for factor in (0.9, 1.0, 1.1):
            x = images.flip(-1) if flip else images
            m = cam_maps(model, x * factor, targets, method="gradcam")
            m = m.flip(-1) if flip else m
            low = m.amin(dim=(1, 2), keepdim=True)
            expected.append((m - low) / (m.amax(dim=(1, 2), keepdim=True) - low))
    torch.testing.assert_close(smoothed, torch.stack(expected).mean(dim=0), rtol=1e-5, atol=1e-6)
