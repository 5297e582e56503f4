"""Class policies: ground truth, predicted, least likely, explicit, and their errors."""
import pytest
import torch

from seethrough.explanations import TARGET_POLICIES, select_classes

LOGITS = torch.tensor([[0.1, 3.0, -2.0, 1.0], [5.0, -1.0, 0.0, 2.0]])


def test_gt_returns_labels_as_column():
    classes = select_classes(LOGITS, "gt", labels=[2, 0], k=3)
    assert classes.dtype == torch.long
    assert classes.tolist() == [[2], [0]]


def test_gt_without_labels_is_a_clear_error():
    with pytest.raises(ValueError, match="labels"):
        select_classes(LOGITS, "gt")


def test_gt_label_out_of_range_names_it():
    with pytest.raises(ValueError, match="label 7 .*4 classes"):
        select_classes(LOGITS, "gt", labels=[7, 0])


def test_pred_is_top_k_descending():
    assert select_classes(LOGITS, "pred", k=2).tolist() == [[1, 3], [0, 3]]
    assert select_classes(LOGITS, "pred").tolist() == [[1], [0]]


def test_one_policy_vocabulary_for_select_classes_and_explain():
    from seethrough.explanations.api import TARGET_POLICIES as api_policies
    from seethrough.protocol import TARGET_POLICIES as protocol_policies

    assert TARGET_POLICIES == api_policies == protocol_policies == ("gt", "pred", "least", "next")
    with pytest.raises(ValueError, match="unknown target policy 'topk'"):
        select_classes(LOGITS, "topk", k=3)


def test_least_is_bottom_k_ascending():
    assert select_classes(LOGITS, "least", k=2).tolist() == [[2, 0], [1, 2]]


@pytest.mark.parametrize("k", [0, 5])
def test_k_out_of_range(k):
    with pytest.raises(ValueError, match="k must be between 1 and the class count 4"):
        select_classes(LOGITS, "pred", k=k)


def test_explicit_applies_to_every_image_in_order():
    assert select_classes(LOGITS, None, indices=[3, 0]).tolist() == [[3, 0], [3, 0]]


@pytest.mark.parametrize("bad", [4, -1])
def test_explicit_index_out_of_range_names_index_and_count(bad):
    with pytest.raises(ValueError, match=f"class index {bad} .*4 classes"):
        select_classes(LOGITS, None, indices=[0, bad])


def test_explicit_needs_distinct_indices():
    with pytest.raises(ValueError, match="distinct"):
        select_classes(LOGITS, None, indices=[1, 1])
    with pytest.raises(ValueError, match="indices"):
        select_classes(LOGITS, None)
    with pytest.raises(ValueError, match="replace the policy"):
        select_classes(LOGITS, "pred", indices=[1])


def test_unknown_policy_lists_valid_ones():
    with pytest.raises(ValueError) as err:
        select_classes(LOGITS, "best")
    assert all(policy in str(err.value) for policy in TARGET_POLICIES)


def test_next_is_label_plus_one_wrapping_around():
    """Official SCOUTER test.py:41 explains label + 1 for negative models (it has no file for the
    last class; here it wraps to class 0)."""
    assert select_classes(LOGITS, "next", labels=[1, 3]).tolist() == [[2], [0]]
    with pytest.raises(ValueError, match='policy "next" .* needs labels='):
        select_classes(LOGITS, "next")


def test_class_map_file_in_rescience_format(tmp_path):
    from seethrough.explanations.targets import load_class_map

    path = tmp_path / "lsc_label_id.json"
    path.write_text('{"0": 3, "1": 3, "2": 0, "3": 1}')        # kayatb/reproduce_SCOUTER lsc_label_id.json
    mapping = load_class_map(path, num_classes=4)
    assert mapping == {0: 3, 1: 3, 2: 0, 3: 1}
    assert select_classes(LOGITS, str(path), labels=[2, 1]).tolist() == [[0], [3]]
    assert select_classes(LOGITS, str(path), labels=[2, 1], class_map=mapping).tolist() == [[0], [3]]
    (tmp_path / "list.json").write_text("[1, 2, 3, 0]")
    assert load_class_map(tmp_path / "list.json") == {0: 1, 1: 2, 2: 3, 3: 0}
    with pytest.raises(ValueError, match="maps to class 3, out of range for a model with 2 classes"):
        load_class_map(path, num_classes=2)
    (tmp_path / "bad.json").write_text('{"0": "dog"}')
    with pytest.raises(ValueError, match="bad.json: entry '0': 'dog' is not an integer"):
        load_class_map(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="no entry for label 2"):
        select_classes(LOGITS, str(path), labels=[2, 1], class_map={1: 0})


def test_explain_accepts_the_next_policy():
    import seethrough

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    images = torch.randn(2, 3, 4, 4)
    via_policy = seethrough.explain(model, images, "next", method="gradcam", labels=[0, 2], target_layer="0")
    by_index = seethrough.explain(model, images, [1, 0], method="gradcam", target_layer="0")
    torch.testing.assert_close(via_policy, by_index)
