import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from deblur_core.checkpoint import load_model, read_metadata, save_checkpoint
from deblur_core.errors import CheckpointError, DeblurError
from deblur_core.models import get_model, list_models

from helpers import randomise


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
