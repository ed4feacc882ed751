import pickle

import pytest
import torch
from safetensors.torch import save_file

from histosynth.errors import UnsafeFileError
from histosynth.safe_io import is_pickle, load_safetensors, load_training_state


class _Evil:
    def __reduce__(self):
        return (exec, ("raise SystemExit('pwned')",))


def test_safetensors_loads(tmp_path):
    save_file({"w": torch.ones(2, 3)}, tmp_path / "w.safetensors")
    assert torch.equal(load_safetensors(tmp_path / "w.safetensors")["w"], torch.ones(2, 3))


def test_torch_checkpoint_refused_with_conversion_advice(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "model.pth")
    assert is_pickle(tmp_path / "model.pth")
    with pytest.raises(UnsafeFileError, match=r"model.pth: is a pickle checkpoint.*safetensors"):
        load_safetensors(tmp_path / "model.pth")


def test_raw_pickle_refused_and_never_executed(tmp_path):
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(UnsafeFileError, match="never loads"):
        load_safetensors(path)


def test_garbage_and_missing(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(UnsafeFileError, match="not a valid safetensors"):
        load_safetensors(tmp_path / "x.safetensors")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_safetensors(tmp_path / "none.safetensors")


def test_training_state_weights_only(tmp_path):
    torch.save({"step": 3, "t": torch.zeros(1)}, tmp_path / "state.pt")
    assert load_training_state(tmp_path / "state.pt")["step"] == 3
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(_Evil()))
    # torch warns about the foreign pickle protocol before refusing the object it builds
    with pytest.raises(pickle.UnpicklingError), pytest.warns(UserWarning, match="pickle protocol"):
        load_training_state(tmp_path / "evil.pt")
