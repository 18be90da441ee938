"""The kernel model: an operator's features read off the operator, and a model of its table entry that prices
operators at resolutions it was never fitted on."""

import json

import numpy as np
import pytest

from akd_tf.operators import LayerPlan, MAC_KINDS
from akd_tf.space import ConvOp, get_space
from latency_db.keys import enumerate_operators
from latency_db.kernel_features import KERNEL_FEATURE_NAMES, WORK_FEATURES, kernel_features, kernel_features_many
from latency_db.kernel_models import COST_TERMS, KernelCostModel, KindRegions, fit_kernel_model

WORK = [KERNEL_FEATURE_NAMES.index(name) for name in WORK_FEATURES]
KIND = KERNEL_FEATURE_NAMES.index("kind")


def mnasnet_operators(resolution: int, classes: int = 10):
    return enumerate_operators(get_space("mnasnet"), (resolution, resolution, 3), classes)


def test_an_operator_s_features_are_read_off_the_operator():
    op = LayerPlan(block=3, layer=1, conv_op=ConvOp("mbconv6", "mbconv", 6), kernel=5, stride=2, se_ratio=0.25,
                   input_shape=(16, 16, 24), out_channels=40, residual=False)
    features = dict(zip(KERNEL_FEATURE_NAMES, kernel_features(op, "none")))
    # expansion 16*16*24*144 + projection 8*8*144*40; depthwise 8*8*25*144; SE 2*144*6 (6 = int(24 * 0.25))
    assert op.macs_by_kind == {"conv": 0, "pointwise": 1_253_376, "depthwise": 230_400, "dense": 1_728}
    assert features == pytest.approx({
        "kind": 3, "kernel": 5, "stride": 2, "expand_ratio": 6, "se_ratio": 0.25, "residual": 0, "input_h": 16,
        "input_w": 16, "in_channels": 24, "out_channels": 40, "classes": 0, "kernels": 8, "conv_mmacs": 0.0,
        "pointwise_mmacs": 1.253376, "depthwise_mmacs": 0.2304, "dense_mmacs": 0.001728,
        "weight_kb": 15_022 * 4 / 1e3,  # 16,006 parameters less 3 of 4 BatchNorm ones on 144 + 144 + 40 channels
        "input_kb": 16 * 16 * 24 * 4 / 1e3, "activation_kb": (16 * 16 * 144 + 8 * 8 * 144 + 8 * 8 * 40) * 4 / 1e3})
    assert kernel_features(op, "int8")[KERNEL_FEATURE_NAMES.index("weight_kb")] == pytest.approx(15.022)


def test_macs_by_kind_add_up_to_every_operator_s_macs():
    ops = mnasnet_operators(64, 1000)
    assert all(sum(op.macs_by_kind.values()) == op.macs and set(op.macs_by_kind) == set(MAC_KINDS) for op in ops)
    assert {op.key.split("-")[0] for op in ops if op.macs_by_kind["conv"]} == {"stem", "conv"}
    assert {op.key.split("-")[0] for op in ops if op.macs_by_kind["depthwise"]} == {"dwconv", "mbconv3", "mbconv6"}


def test_kernels_count_the_tflite_operators_each_micro_model_runs(tmp_path):
    from akd_tf.interpreter import make_interpreter
    from latency_db.lut import export_operator

    ops = mnasnet_operators(32)
    picks = [next(op for op in ops if op.key.startswith(prefix) and op.key.endswith(suffix))
             for prefix, suffix in (("conv-", "se:0.25-idskip"), ("mbconv6-", "se:0.25-noskip"), ("head-", ""))]
    for i, op in enumerate(picks):
        path = export_operator(op, "none", str(tmp_path / f"op{i}.tflite"))
        details = make_interpreter(path)._get_ops_details()
        ran = sum(d["op_name"] != "DELEGATE" for d in details)  # the model's operators, not XNNPACK's node
        assert kernel_features(op, "none")[KERNEL_FEATURE_NAMES.index("kernels")] == ran, op.key
    assert [kernel_features(op, "none")[KERNEL_FEATURE_NAMES.index("kernels")] for op in picks] == [7, 8, 3]


def cost_law(features: np.ndarray) -> np.ndarray:
    """A latency (us) that is exactly a fixed cost per kind plus a cost per unit of work."""
    per_unit = np.array([2.0, 0.9, 0.5, 3.0, 4.0, 0.02, 0.01, 0.005])  # kernels, MACs x4, kB x3
    fixed = np.array([5.0, 3.0, 2.0, 4.0, 6.0])[features[:, KIND].astype(int)]
    return fixed + features[:, WORK] @ per_unit


def test_a_cost_law_is_recovered_and_priced_exactly_at_a_resolution_never_fitted():
    fitted = mnasnet_operators(32) + mnasnet_operators(64)
    unseen = mnasnet_operators(96)
    features, unseen_features = kernel_features_many(fitted, "none"), kernel_features_many(unseen, "none")
    model = fit_kernel_model(features, cost_law(features))
    np.testing.assert_allclose(model.predict_us(features), cost_law(features), rtol=1e-6)
    np.testing.assert_allclose(model.predict_us(unseen_features), cost_law(unseen_features), rtol=1e-6)
    assert sorted(model.costs) == ["conv", "dwconv", "head", "mbconv", "stem"]
    assert all(len(c) == len(COST_TERMS) and min(c) >= 0 for c in model.costs.values())


def test_the_model_round_trips_through_json_and_is_deterministic():
    ops = mnasnet_operators(32)
    features = kernel_features_many(ops, "none")
    rng = np.random.default_rng(0)
    latency = cost_law(features) * rng.uniform(0.8, 1.25, len(ops))  # noise the trees fit
    model = fit_kernel_model(features, latency, seed=1)
    stored = json.loads(json.dumps(model.to_dict()))  # as the database's JSON column holds it
    again = KernelCostModel.from_dict(stored)
    others = kernel_features_many(mnasnet_operators(48), "none")
    np.testing.assert_array_equal(again.predict_us(others), model.predict_us(others))
    assert fit_kernel_model(features, latency, seed=1).to_dict() == model.to_dict()
    assert stored["method"] == "cost+lightgbm" and stored["features"] == list(KERNEL_FEATURE_NAMES)
    assert model.predict_us(features[:0]).shape == (0,)
    inside = np.mean(np.abs(model.predict_us(features) / latency - 1) <= 0.10)
    assert inside > np.mean(np.abs(model.cost_us(features) / latency - 1) <= 0.10)  # the trees bend the cost


def test_bad_fits_and_stored_models_are_refused_with_what_to_do():
    features = kernel_features_many(mnasnet_operators(32), "none")
    with pytest.raises(ValueError, match=r"^a kernel model needs at least 2 measured entries, got 1$"):
        fit_kernel_model(features[:1], [3.0])
    with pytest.raises(ValueError, match=r"^a kernel model is fitted on positive, finite latencies; got \[0.0\]$"):
        fit_kernel_model(features[:3], [3.0, 0.0, 2.0])
    stems = features[features[:, KIND] == 0]
    only_stems = fit_kernel_model(np.repeat(stems, 2, axis=0), [10.0, 11.0])
    with pytest.raises(ValueError, match=r"^the kernel model was fitted on no head operator \(it knows stem\); "
                                         r"fit it on a table with head entries$"):
        only_stems.predict_us(features[features[:, KIND] == 4])
    data = only_stems.to_dict()
    for changed, message in ((dict(method="cubic"), r"has method 'cubic'; this version knows cost\+lightgbm"),
                             (dict(features=["kind"]), r"names features \['kind'\]; this version computes"),
                             (dict(costs={"stem": [1.0]}), r"prices kinds \['stem'\] with \[1\] terms")):
        with pytest.raises(ValueError, match=message + ".*: fit the kernel model again$"):
            KernelCostModel.from_dict({**data, **changed})


def test_regions_flag_each_kind_outside_its_fitted_range():
    fitted = kernel_features_many(mnasnet_operators(32) + mnasnet_operators(64), "none")
    regions = KindRegions.of(fitted)
    assert sorted(regions.regions) == ["conv", "dwconv", "head", "mbconv", "stem"]
    stem_64, stem_66, stem_224 = (kernel_features_many(mnasnet_operators(r)[:1], "none") for r in (64, 66, 224))
    assert regions.outside(stem_64) == [""]
    assert regions.outside(stem_66) == [""]  # its size and work lie within a tenth past the 64's
    assert regions.outside(stem_224)[0].startswith("stem: input_h 224 outside fitted 32..64; input_w 224 outside "
                                                   "fitted 32..64; conv_mmacs ")
    heads = kernel_features_many([op for op in mnasnet_operators(32, 1000) if op.key.startswith("head-")][:1], "none")
    assert regions.outside(heads)[0].startswith("head: classes 1000 outside fitted 10..10; dense_mmacs 1.28 outside")
    assert KindRegions.from_dict(json.loads(json.dumps(regions.to_dict()))).outside(stem_224) == \
        regions.outside(stem_224)
    with pytest.raises(ValueError, match=r"^a kernel model's region names features \['x'\]; .*: fit the kernel model "
                                         r"again$"):
        KindRegions.from_dict({"stem": {"features": ["x"], "low": [0], "high": [1]}})
