import hashlib

import numpy as np
import pytest
import tf_keras as keras

from akd_tf import export
from akd_tf.interpreter import check_tflite_file, load_interpreter

SHAPE = (32, 32, 3)


@pytest.fixture(scope="module")
def model(space):
    keras.backend.clear_session()
    return export.build_for_export(space.sample_many(1, seed=0)[0], SHAPE, 10, seed=0)


@pytest.mark.parametrize("quantize", ["none", "fp16", "int8"])
def test_export_passes_parity_and_writes_the_file(model, tmp_path, quantize):
    out = tmp_path / f"m-{quantize}.tflite"
    result = export.export_tflite(model, out, quantize, min_int8_agreement=0.0)
    data = out.read_bytes()
    assert result.size_bytes == len(data) and result.sha256 == hashlib.sha256(data).hexdigest()
    check_tflite_file(out)
    parity = result.parity
    assert parity.passed and parity.samples == export.DEFAULT_PARITY_SAMPLES
    if quantize == "int8":
        assert parity.logit_correlation >= export.MIN_INT8_LOGIT_CORRELATION
    else:
        assert parity.max_abs_diff <= export.PARITY_TOLERANCE[quantize] * parity.logit_scale
        assert parity.top1_agreement == 1.0
    # the check is not vacuous: logits vary across inputs at unit scale
    logits = model(export.random_images(SHAPE, 8, 5), training=False).numpy()
    assert logits.std(axis=0).mean() > 0.1


def test_fp16_export_loses_nothing_for_prepared_weights(model, tmp_path):
    """prepare_untrained puts every folded weight on the float16 grid, so fp16 conversion rounds nothing away.

    Before any fp16 rounding the converter folds each batch norm's multiplier into the kernel. On some
    hosts (an AVX-512 one, 2026-12-02) it computes that identity multiplier 1-2 float32 ulps below 1, which
    moves the folded weights of the fp32 model as far off the grid; the outputs then differ by about 5e-5
    of the logit scale, against 3e-2 when the weights are not put on the grid (measured on this model).
    The bound sits between the two."""
    images = export.random_images(SHAPE, 4, 9)
    fp32 = export.run_tflite(export.convert(model, "none"), images)
    fp16 = export.run_tflite(export.convert(model, "fp16"), images)
    assert np.abs(fp32 - fp16).max() <= 1e-3 * fp32.std()


def test_int8_model_has_int8_input_and_output(model):
    interpreter = load_interpreter().interpreter_class(model_content=export.convert(
        model, "int8", export.random_images(SHAPE, 8, 0)))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8


def test_failed_parity_is_an_error_and_writes_nothing(space, model, tmp_path):
    other = export.build_for_export(space.sample_many(2, seed=0)[1], SHAPE, 10, seed=1)
    images = export.random_images(SHAPE, 8, 3)
    report = export.check_parity(model, export.convert(other, "none"), images, "none")
    assert not report.passed and report.summary().startswith("parity FAILED: none max abs diff")
    out = tmp_path / "strict.tflite"
    with pytest.raises(export.ParityError, match=r"strict.tflite: not written, parity FAILED: int8 top-1 agreement"):
        export.export_tflite(model, out, "int8", min_int8_agreement=1.0, parity_images=images)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_untrained_latency_exports_check_parity_to_a_thousandth_of_the_logit_scale(space, model, tmp_path):
    """A wrong graph is off by the logit scale itself, so the looser tolerance still fails it."""
    result = export.export_arch(space.sample_many(1, seed=0)[0], SHAPE, 10, tmp_path / "arch.tflite")
    assert (result.parity.tolerance, result.parity.passed) == (1e-3, True)
    other = export.build_for_export(space.sample_many(2, seed=0)[1], SHAPE, 10, seed=1)
    wrong = export.check_parity(model, export.convert(other, "none"), export.random_images(SHAPE, 8, 3), "none",
                                tolerances=export.UNTRAINED_PARITY_TOLERANCE)
    assert wrong.tolerance == 1e-3 and wrong.max_abs_diff > 1e-3 * wrong.logit_scale and not wrong.passed


def test_multi_output_models_export_their_logits(space, tmp_path):
    from akd_tf.models import build_student

    two = build_student(space.sample_many(1, seed=1)[0], SHAPE, 10, with_embedding=True)
    export.calibrate_batchnorm(two, export.random_images(SHAPE, 8, 0))
    result = export.export_tflite(two, tmp_path / "two.tflite")
    interpreter = load_interpreter().interpreter_class(model_path=result.path)
    assert [tuple(d["shape"]) for d in interpreter.get_output_details()] == [(1, 10)]


def test_bad_inputs(model, tmp_path):
    with pytest.raises(ValueError, match="quantize must be one of none, fp16, int8, got 'int4'"):
        export.export_tflite(model, tmp_path / "x.tflite", "int4")
    with pytest.raises(ValueError, match=r"representative data have shape \(2, 8, 8, 3\), expected \(N, 32, 32, 3\)"):
        export.export_tflite(model, tmp_path / "x.tflite", "int8", representative_data=np.zeros((2, 8, 8, 3)))
    np.save(tmp_path / "flat.npy", np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"flat.npy: expected images of shape \(N, H, W, C\), got \(4, 3\)"):
        export.load_image_array(tmp_path / "flat.npy")
    np.savez(tmp_path / "noy.npz", images=np.zeros((1, 2, 2, 3)))
    with pytest.raises(ValueError, match="noy.npz: expected an array named 'x', found images"):
        export.load_image_array(tmp_path / "noy.npz")
    with pytest.raises(ValueError, match="no-such.keras: no such Keras model"):
        export.load_keras_model(tmp_path / "no-such.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.keras: cannot be loaded as a Keras model"):
        export.load_keras_model(tmp_path / "junk.keras")


def test_representative_data_file_round_trip(tmp_path):
    x = export.random_images(SHAPE, 3, 0)
    np.savez(tmp_path / "calib.npz", x=x)
    np.testing.assert_array_equal(export.load_image_array(tmp_path / "calib.npz"), x)
