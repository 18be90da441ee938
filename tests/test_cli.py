import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from akd_tf.cli import main

ARCH0 = ("mbconv6_k5_se0.25_noskip_w0.75_n0:conv_k3_se0_id_w1_n3:mbconv3_k5_se0.25_id_w1_n3:"
         "mbconv3_k5_se0_id_w1.25_n3:dwconv_k5_se0.25_noskip_w1.25_n3:mbconv6_k3_se0_id_w0.75_n3:"
         "conv_k3_se0_noskip_w1_n0")
TOKENS0 = "3,1,1,0,0,0,0,0,0,1,1,2,2,1,1,1,1,1,2,1,0,1,2,0,1,1,1,0,2,2,3,0,0,1,0,1,0,0,0,0,1,0"
GOLDEN = Path(__file__).with_name("golden_arch_show.txt")


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_arch_sample_is_seeded(run):
    result = run("arch", "sample", "--seed", "0")
    assert result.exit_code == 0 and result.output == ARCH0 + "\n"
    three = run("arch", "sample", "--n", "3", "--seed", "0").output.splitlines()
    assert len(three) == 3 and three[0] == ARCH0 and len(set(three)) == 3


def test_arch_space_summary(run):
    lines = run("arch", "space").output.splitlines()
    assert lines[0].split() == ["block", "stride", "filters", "base", "layers", "conv_op", "kernel", "se_ratio",
                                "skip_op", "width", "layers"]
    assert lines[2].split() == ["1", "1", "16", "1", "conv", "dwconv", "mbconv3", "mbconv6", "k3", "k5", "se0",
                                "se0.25", "noskip", "id", "w0.75", "w1", "w1.25", "n0", "n1", "n2"]
    assert lines[-1] == ("mnasnet (version 18b5252c): 42 decisions, one-hot width 112, 1.643e+17 architectures "
                         "building 2.893e+16 distinct networks (28,929,168,506,880,000), inputs 32..224 px")
    data = json.loads(run("arch", "space", "--json").output)
    assert data["size"] == 288 ** 7 and data["onehot_width"] == 112 and data["version"] == "18b5252c"
    assert data["networks"] == 28_929_168_506_880_000


def test_arch_encode_decode_round_trip(run):
    assert run("arch", "encode", ARCH0).output == TOKENS0 + "\n"
    assert run("arch", "decode", TOKENS0).output == ARCH0 + "\n"
    onehot = run("arch", "encode", ARCH0, "--onehot").output.strip()
    assert len(onehot) == 112 and onehot.count("1") == 42
    assert run("arch", "decode", onehot).output == ARCH0 + "\n"


def test_arch_canonical_prints_the_least_tokens_that_build_the_same_network(run):
    # ARCH0 removes blocks 1 and 7, whose decisions take their least values; blocks 2 to 6 have 3 layers each,
    # so every one of their decisions builds something and stays.
    canonical = ("conv_k3_se0_noskip_w0.75_n0:" + ARCH0.split(":", 1)[1].rsplit(":", 1)[0]
                 + ":conv_k3_se0_noskip_w0.75_n0")
    assert run("arch", "canonical", ARCH0).output == canonical + "\n"
    assert run("arch", "canonical", canonical).output == canonical + "\n"
    bad = run("arch", "canonical", "bad")
    assert bad.exit_code == 2 and "Invalid value for ARCH: space 'mnasnet': expected 7 blocks" in bad.output


def test_arch_show_table(run):
    result = run("arch", "show", ARCH0, "--resolution", "32", "--classes", "10")
    assert result.exit_code == 0
    assert result.output == GOLDEN.read_text()
    data = json.loads(run("arch", "show", ARCH0, "--resolution", "32", "--classes", "10", "--json").output)
    assert data["params"] == 1087611 and data["macs"] == 3977360 and len(data["blocks"]) == 9


@pytest.mark.parametrize("args, message", [
    (["arch", "show", "bad"], "Invalid value for ARCH: space 'mnasnet': expected 7 blocks separated by ':', got 1"),
    (["arch", "encode", ARCH0.replace("k5", "k9", 1)],
     "Invalid value for ARCH: block 1 kernel: got 'k9', expected one of k3, k5"),
    (["arch", "decode", "1,2,3"], "Invalid value for TOKENS: space 'mnasnet': expected 42 tokens"),
    (["arch", "decode", "a,b"], "Invalid value for TOKENS: expected comma-separated ints, got 'a,b'"),
    (["arch", "show", ARCH0, "--resolution", "8"],
     "Error: space 'mnasnet': resolution must be an int in 32..224, got 8"),
    (["arch", "sample", "--space", "nope"], "Invalid value for '--space': unknown search space 'nope'; known spaces: "),
    (["export", "--out", "x.tflite"], "Error: give exactly one of --arch, --keras-model or --run"),
    (["export", "--arch", "conv", "--out", "x.tflite"],
     "Invalid value for '--arch': space 'mnasnet': expected 7 blocks separated by ':', got 1 in 'conv'"),
    (["export", "--keras-model", "nothing.keras", "--out", "x.tflite"], "Error: nothing.keras: no such Keras model"),
    (["bench", "missing.tflite"], "Error: missing.tflite: no such model file"),
])
def test_bad_input_is_a_one_line_error(run, args, message):
    result = run(*args)
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output


def test_info_names_the_interpreter_and_versions(run):
    data = json.loads(run("info", "--json").output)
    assert data["interpreter"] == "ai-edge-litert"
    assert data["tensorflow"].startswith("2.21") and data["keras"].startswith("2.21")
    text = run("info").output
    assert f"interpreter  ai-edge-litert {data['interpreter_version']}" in text


def test_export_then_bench(run, tmp_path):
    out = tmp_path / "student.tflite"
    result = run("export", "--arch", ARCH0, "--resolution", "32", "--classes", "10", "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"wrote {out} (") and ", none, sha256 " in lines[0]
    assert lines[1].startswith("parity ok: none max abs diff ")
    bench = run("bench", str(out), "--runs", "5", "--min-secs", "0", "--json")
    record = json.loads(bench.output)
    assert record["count"] == 5 and record["device"] == "local" and record["settings"]["num_threads"] == 1
    text = run("bench", str(out), "--runs", "5", "--min-secs", "0", "--core", "none").output
    assert "device:           local (ai-edge-litert" in text and "not pinned" in text


def test_export_a_saved_keras_model_int8(run, tmp_path, space):
    import numpy as np
    import tf_keras as keras

    from akd_tf import export

    keras.backend.clear_session()
    model = export.build_for_export(space.parse(ARCH0), (32, 32, 3), 10, seed=3)
    model.save(tmp_path / "student.keras")
    np.savez(tmp_path / "calib.npz", x=export.random_images((32, 32, 3), 16, 4))
    result = run("export", "--keras-model", str(tmp_path / "student.keras"), "--quantize", "int8",
                 "--representative-data", str(tmp_path / "calib.npz"), "--min-int8-agreement", "0.2",
                 "--out", str(tmp_path / "s8.tflite"), "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["quantize"] == "int8" and record["parity"]["passed"] is True
    assert record["parity"]["min_top1_agreement"] == 0.2
