"""seethrough.explain: every explainer, normalize/upsample choices, target policies, errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import seethrough
from seethrough.explanations import explain, list_explainers, resolve_targets

SIZE, CLASSES, BATCH = 32, 3, 2
#: Options that keep every explainer to a fraction of a second on the tiny model.
FAST_OPTIONS = {"rise": dict(num_masks=16, grid_size=4), "scorecam": dict(batch_size=64),
                "ablationcam": dict(batch_size=64)}
EXPECTED = {"native", "gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "scorecam", "ablationcam",
            "eigencam", "rise"}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return seethrough.create_model("fc", num_classes=CLASSES, backbone="test_convnext", output_stride=8)


@pytest.fixture(scope="module")
def images():
    return torch.randn(BATCH, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_registry_lists_every_method():
    assert EXPECTED <= set(list_explainers())


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_every_method_gives_unit_maps_restores_flags_and_leaves_no_hooks(model, images, method):
    model.train()
    model.backbone.body.stem.eval()   # a submodule kept in eval on purpose
    flags = [m.training for m in model.modules()]
    requires = [p.requires_grad for p in model.parameters()]
    options = FAST_OPTIONS.get(method, {})
    maps = explain(model, images, "pred", method=method, **options)
    assert maps.shape == (BATCH, SIZE, SIZE) and maps.dtype == torch.float32
    assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    small = explain(model, images, "pred", method=method, upsample="none", **options)
    for m in small:   # min-max at the explainer's resolution: exactly 0 and 1 unless constant
        assert float(m.min()) == 0 and float(m.max()) in (0.0, 1.0)
    assert [m.training for m in model.modules()] == flags
    assert [p.requires_grad for p in model.parameters()] == requires
    assert all(p.grad is None for p in model.parameters())
    assert _hooks(model) == 0
    model.eval()


def test_normalize_then_upsample(model, images):
    raw = explain(model, images, "pred", method="gradcam", normalize="none", upsample="none")
    assert raw.shape == (BATCH, 4, 4) and raw.max() > 1e-6
    low, high = raw.amin(dim=(1, 2), keepdim=True), raw.amax(dim=(1, 2), keepdim=True)
    unit = (raw - low) / (high - low)
    torch.testing.assert_close(explain(model, images, "pred", method="gradcam", upsample="none"), unit)
    bilinear = F.interpolate(unit[:, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(explain(model, images, "pred", method="gradcam"), bilinear)
    nearest = explain(model, images, "pred", method="gradcam", upsample="nearest")
    torch.testing.assert_close(nearest, unit.repeat_interleave(8, 1).repeat_interleave(8, 2))
    bicubic = explain(model, images, "pred", method="gradcam", upsample="bicubic")
    assert bicubic.min() >= 0 and bicubic.max() <= 1
    unnormalized = explain(model, images, "pred", method="gradcam", normalize="none")
    torch.testing.assert_close(unnormalized, F.interpolate(raw[:, None], size=(SIZE, SIZE), mode="bilinear",
                                                           align_corners=False)[:, 0])


def test_joint_normalization_only_for_native(model, images):
    with pytest.raises(ValueError, match="joint"):
        explain(model, images, "pred", method="gradcam", normalize="joint")
    targets = torch.tensor([0, 2])
    with torch.no_grad():
        all_maps = model.eval()(images).maps
    low = all_maps.amin(dim=(1, 2, 3), keepdim=True)
    joint = (all_maps - low) / (all_maps.amax(dim=(1, 2, 3), keepdim=True) - low)
    got = explain(model, images, targets, method="native", normalize="joint", upsample="none")
    torch.testing.assert_close(got, joint[torch.arange(BATCH), targets])


def test_target_policies(model, images):
    with torch.no_grad():
        logits = model.eval()(images).logits
    labels = torch.tensor([1, 0])

    def maps(targets, **kw):
        return explain(model, images, targets, method="gradcam", normalize="none", upsample="none", **kw)

    torch.testing.assert_close(maps("pred"), maps(logits.argmax(1)))
    torch.testing.assert_close(maps("least"), maps(logits.argmin(1).tolist()))
    torch.testing.assert_close(maps("gt", labels=labels), maps(labels))
    torch.testing.assert_close(maps(2), maps([2, 2]))
    assert not torch.allclose(maps(0), maps(1))
    assert resolve_targets(model, images, "least").tolist() == logits.argmin(1).tolist()


def test_bad_arguments_are_named(model, images):
    with pytest.raises(ValueError, match="unknown explanation method 'gradcam3'.*gradcam"):
        explain(model, images, "pred", method="gradcam3")
    with pytest.raises(ValueError, match="normalize='max'"):
        explain(model, images, "pred", method="gradcam", normalize="max")
    with pytest.raises(ValueError, match="upsample='linear'"):
        explain(model, images, "pred", method="gradcam", upsample="linear")
    with pytest.raises(ValueError, match="unknown target policy 'top'"):
        explain(model, images, "top", method="gradcam")
    with pytest.raises(ValueError, match="needs labels"):
        explain(model, images, "gt", method="gradcam")
    with pytest.raises(ValueError, match="3 targets for a batch of 2"):
        explain(model, images, [0, 1, 2], method="gradcam")
    with pytest.raises(ValueError, match=">= 0"):
        explain(model, images, [0, -1], method="gradcam")
    for method in ("gradcam", "scorecam", "rise"):
        with pytest.raises(ValueError, match="target class 5 is out of range for a model with 3 classes"):
            explain(model, images, [0, 5], method=method, **FAST_OPTIONS.get(method, {}))
    with pytest.raises(ValueError, match="B×C×H×W"):
        explain(model, images[0], "pred", method="gradcam")
    with pytest.raises(TypeError, match="unexpected keyword"):
        explain(model, images, "pred", method="gradcam", num_masks=3)
    assert _hooks(model) == 0
