import json
import logging
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from deblur_core.checkpoint import (load_model, load_train_state, pretrained_path, read_metadata, save_checkpoint,
                                    save_train_state)
from deblur_core.errors import CheckpointError, DeblurError
from deblur_core.inference import load_deblurrer
from deblur_core.models import get_model, list_models
from deblur_core.single import deblur_image

from helpers import poisoned_copy, randomise


def _trained_like(name, **kwargs):
    return randomise(get_model(name, **kwargs), seed=1).eval()


@pytest.mark.parametrize("name", list_models())
def test_save_load_is_bit_identical(tmp_path, name):
    model = _trained_like(name, in_channels=1)
    path = save_checkpoint(tmp_path / "m.safetensors", model, name=name, kwargs={"in_channels": 1},
                           config={"steps": 3}, metrics={"psnr": 30.5})
    loaded, meta = load_model(path)
    assert meta["model"] == name and meta["kwargs"] == {"in_channels": 1}
    assert meta["config"] == {"steps": 3} and meta["metrics"] == {"psnr": 30.5} and meta["version"]
    x = torch.rand(2, 1, 29, 31)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_fp16_storage_loads_as_fp32(tmp_path):
    model = _trained_like("srn")
    path = save_checkpoint(tmp_path / "m.safetensors", model, name="srn", dtype=torch.float16)
    loaded, _ = load_model(path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=1e-2)


def test_pickle_files_are_refused(tmp_path):
    model = get_model("srn")
    torch_file = tmp_path / "weights.pt"
    torch.save(model.state_dict(), torch_file)
    with pytest.raises(CheckpointError, match="pickled"):
        load_model(torch_file)
    raw = tmp_path / "weights.pkl"
    raw.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="pickled"):
        load_model(raw)


def test_bad_files_raise_project_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}xxxxxxx")
    with pytest.raises(CheckpointError):
        load_model(junk)
    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(bare))
    with pytest.raises(CheckpointError, match="no 'deblur' metadata"):
        read_metadata(bare)
    # a checkpoint whose tensors do not fit the model it names
    wrong = tmp_path / "wrong.safetensors"
    save_file({"w": torch.zeros(2)}, str(wrong), metadata={"deblur": json.dumps({"model": "srn", "kwargs": {}})})
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model(wrong)
    assert issubclass(CheckpointError, DeblurError)


def test_expect_refuses_other_variant(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", get_model("nafnet"), name="nafnet")
    with pytest.raises(CheckpointError, match="not 'srn'"):
        load_model(path, expect="srn")


def test_save_is_atomic_no_temp_left(tmp_path):
    save_checkpoint(tmp_path / "m.safetensors", get_model("nafnet"), name="nafnet")
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_saved_files_get_ordinary_permissions(tmp_path):
    # written through a private temporary file, but the result must be readable like any new file
    path = save_checkpoint(tmp_path / "m.safetensors", get_model("nafnet"), name="nafnet")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_file_and_tensor(tmp_path, value):
    bad = tmp_path / "nan1.safetensors"
    name = poisoned_copy(pretrained_path("nafnet-cpu"), bad, value=value)
    with pytest.raises(CheckpointError, match=f"'{bad}' holds non-finite weights: tensor '{name}' has 1 NaN"):
        load_model(bad)
    with pytest.raises(CheckpointError, match=f"tensor '{name}'"):
        load_deblurrer("nafnet-cpu", bad, device="cpu")
    # the demo's path: the same refusal, as the DeblurError it shows to the user
    with pytest.raises(DeblurError, match=f"tensor '{name}'"):
        deblur_image(torch.rand(3, 16, 16).permute(1, 2, 0).numpy(), "nafnet-cpu", weights=bad, device="cpu")


def test_a_training_state_with_non_finite_values_is_refused(tmp_path):
    model = _trained_like("srn-small")
    opt = torch.optim.Adam(model.parameters())
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    save_train_state(tmp_path / "train_state.safetensors", model, opt, {"step": 3})
    fresh = get_model("srn-small")
    with pytest.raises(CheckpointError, match="non-finite weights: tensor 'model[.]"):
        load_train_state(tmp_path / "train_state.safetensors", fresh, torch.optim.Adam(fresh.parameters()))


def test_a_file_that_does_not_fit_its_model_is_summarised_in_one_short_line(tmp_path, caplog):
    # srn's tensors under nafnet-cpu's name: every name differs, as with a file from another project
    wrong = tmp_path / "wrong.safetensors"
    save_checkpoint(wrong, get_model("srn"), name="srn")
    meta = read_metadata(wrong)
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(wrong)), str(wrong), metadata={"deblur": json.dumps({**meta, "model": "nafnet-cpu"})})
    with caplog.at_level(logging.DEBUG, logger="deblur_core"), pytest.raises(CheckpointError) as info:
        load_model(wrong)
    message = str(info.value)
    own, theirs = get_model("nafnet-cpu").state_dict(), load_file(str(wrong))
    assert len(message) < 400 and "\n" not in message, message
    assert f"does not fit model 'nafnet-cpu': {len(own)} of its {len(own)} tensors missing" in message
    assert f"{len(theirs)} unexpected" in message and "--verbose" in message
    logged = caplog.text  # every name, for whoever needs them
    assert all(k in logged for k in [*own, *theirs])


def test_a_tensor_of_another_shape_is_named_with_both_shapes(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", get_model("srn-small"), name="srn-small")
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    key = next(k for k, v in tensors.items() if v.ndim == 4)
    tensors[key] = tensors[key][:, :1].contiguous()
    save_file(tensors, str(path), metadata={"deblur": json.dumps(read_metadata(path))})
    with pytest.raises(CheckpointError, match=f"1 of another shape [(]{key}: [(].*[)] in the file, [(].*[)] in the model"):
        load_model(path)
