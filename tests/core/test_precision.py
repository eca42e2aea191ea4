"""deblur_core.precision: the names, the one name-to-dtype table, and what ``auto`` means for inference and
for training on each device (capabilities faked)."""

from types import MappingProxyType

import pytest
import torch

from deblur_core.precision import (DTYPES, PRECISIONS, autocast, autocast_dtype, check_precision, cpu_has_amx_bf16,
                                   inference_dtype, precision_name)


@pytest.fixture
def cuda_bf16(monkeypatch):
    """Set whether the (absent) GPU is said to have native bf16."""
    def fake(present):
        def is_bf16_supported(including_emulation=True):
            assert including_emulation is False  # emulated bf16 (pre-Ampere GPUs) must not count
            return present
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    return fake


def test_every_name_but_auto_has_one_dtype_and_back():
    assert set(PRECISIONS) == {"auto", *DTYPES}
    assert [precision_name(DTYPES[name]) for name in DTYPES] == list(DTYPES)
    assert precision_name(None) == "fp32"  # what the rules return for plain fp32
    with pytest.raises(ValueError, match="no precision name for torch.float64"):
        precision_name(torch.float64)


def test_auto_is_bf16_on_a_cpu_with_amx_and_fp32_on_any_other(amx):
    amx(True)
    assert inference_dtype("auto", "cpu") is torch.bfloat16
    amx(False)
    assert inference_dtype("auto", "cpu") is None
    assert inference_dtype("auto", torch.device("cpu")) is None


def test_auto_on_cuda_is_bf16_where_native_else_fp16(cuda_bf16):
    cuda_bf16(True)
    assert inference_dtype("auto", "cuda") is torch.bfloat16
    assert autocast_dtype("auto", "cuda") is torch.bfloat16
    cuda_bf16(False)
    assert inference_dtype("auto", "cuda:0") is torch.float16
    assert autocast_dtype("auto", torch.device("cuda")) is torch.float16


def test_training_auto_is_bf16_on_a_cpu_with_amx_else_fp32(amx):
    amx(True)
    assert autocast_dtype("auto", "cpu") is torch.bfloat16
    assert autocast_dtype("fp32", "cpu") is None
    amx(False)
    assert autocast_dtype("auto", "cpu") is None
    assert autocast_dtype("bf16", "cpu") is torch.bfloat16


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_explicit_precisions_are_honoured_everywhere(amx, device):
    amx(False)
    for rule in (inference_dtype, autocast_dtype):
        assert [precision_name(rule(p, device)) for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]
    assert inference_dtype("fp32", device) is None  # fp32 runs without autocast


def test_unknown_precision_is_refused():
    for refuse in (check_precision, lambda p: inference_dtype(p, "cpu"), lambda p: autocast_dtype(p, "cpu")):
        with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16, got 'int8'"):
            refuse("int8")


@pytest.mark.parametrize("caps, expected", [
    ({"amx_bf16": True, "amx_tile": True, "avx512_bf16": True}, True),  # Intel Xeon, Sapphire Rapids on
    ({"amx_bf16": False, "amx_tile": False, "avx512_bf16": True}, False),  # AMD EPYC Zen 4: AVX512-BF16 only
    ({"amx_bf16": False, "avx2": True}, False),  # AVX2 only: bf16 ~140x slower than fp32
])
def test_amx_is_read_from_torchs_cpu_capabilities(monkeypatch, caps, expected):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: MappingProxyType(caps), raising=False)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    assert cpu_has_amx_bf16() is expected


def test_autocast_runs_in_its_dtype_and_fp32_switches_an_enclosing_one_off():
    a, b = torch.rand(8, 8), torch.rand(8, 8)
    with autocast("cpu", torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16
        with autocast("cpu", None):
            assert (a @ b).dtype == torch.float32
        with autocast(torch.device("cpu"), torch.float32):
            assert (a @ b).dtype == torch.float32


def test_auto_keeps_nafnet_on_its_fp32_cpu_path_even_with_amx(amx):
    from deblur_core.inference import load_deblurrer

    amx(True)
    assert load_deblurrer("srn-nolstm", device="cpu").precision == "bf16"
    for name in ("nafnet", "nafnet-cpu"):
        assert load_deblurrer(name, device="cpu").precision == "fp32"  # its own path beats bf16 autocast
        assert load_deblurrer(name, device="cpu", precision="bf16").precision == "bf16"  # asked for: honoured


def test_the_model_aware_rule_is_the_one_rule(amx):
    from deblur_core.models import get_model

    amx(True)
    assert inference_dtype("auto", "cpu", get_model("nafnet-cpu")) is None
    assert inference_dtype("auto", "cpu", get_model("srn-nolstm")) is torch.bfloat16
    assert inference_dtype("bf16", "cpu", get_model("nafnet")) is torch.bfloat16


def test_a_network_that_cannot_run_a_half_precision_refuses_it_and_auto_passes_it_by(amx, cuda_bf16):
    class NoHalf(torch.nn.Module):
        architecture = "NoHalfNet"
        supports_half = False
        supports_bfloat16 = True

    class FP32Only(torch.nn.Module):
        supports_half = supports_bfloat16 = False

    with pytest.raises(ValueError, match="NoHalfNet does not support fp16; use --precision fp32 or bf16"):
        inference_dtype("fp16", "cpu", NoHalf())
    with pytest.raises(ValueError, match="FP32Only does not support bf16; use --precision fp32$"):
        inference_dtype("bf16", "cuda", FP32Only())
    assert inference_dtype("fp32", "cpu", FP32Only()) is None
    amx(True)
    assert inference_dtype("auto", "cpu", NoHalf()) is torch.bfloat16
    assert inference_dtype("auto", "cpu", FP32Only()) is None
    cuda_bf16(False)  # a GPU without native bf16: fp16, unless the network cannot
    assert inference_dtype("auto", "cuda", NoHalf()) is None
    cuda_bf16(True)
    assert inference_dtype("auto", "cuda", NoHalf()) is torch.bfloat16
    assert inference_dtype("auto", "cuda", FP32Only()) is None
