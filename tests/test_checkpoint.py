"""zoo.checkpoint and zoo.rundir's writes: atomic saves, loads that never run code, damaged files as one line."""

import os
import pickle

import pytest
import torch

from zoo.checkpoint import load_checkpoint, save_checkpoint
from zoo.errors import ZooError
from zoo.rundir import WriteError, atomic_write, publish_copy, remove_stale_temporaries


def test_save_and_load_round_trip(tmp_path):
    state = {"model": {"w": torch.arange(6.0).view(2, 3)}, "epoch": 3, "classes": ["a", "b"], "config": {"lr": 0.1}}
    save_checkpoint(state, tmp_path / "ckpt" / "last.pt")
    loaded = load_checkpoint(tmp_path / "ckpt" / "last.pt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["classes"] == ["a", "b"]
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["last.pt"]  # no temporary file left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_write(path, b"good")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(WriteError, match=r"last.pt \(No space left on device\)"):  # one line, not the OSError
        atomic_write(path, b"new")
    assert path.read_bytes() == b"good" and list(tmp_path.iterdir()) == [path]


def test_publish_copy_survives_the_source_being_replaced(tmp_path):
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    atomic_write(last, b"epoch 1")
    publish_copy(last, best)
    atomic_write(last, b"epoch 2")
    assert best.read_bytes() == b"epoch 1" and last.read_bytes() == b"epoch 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/zoo-should-not-exist",))


def test_loading_never_runs_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": _Payload()}, path)
    with pytest.raises(ZooError, match="was refused: it needs the unsafe global posix.system"):
        load_checkpoint(path)
    assert not os.path.exists("/tmp/zoo-should-not-exist")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", pickle.dumps([1, 2])[:5]])
def test_damaged_files_are_one_line_errors(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ZooError, match="damaged or not a PyTorch checkpoint|was refused") as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(ZooError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_safetensors_files_load_as_state_dicts(tmp_path):
    from safetensors.torch import save_file

    save_file({"fc.weight": torch.ones(2, 3)}, tmp_path / "w.safetensors")
    assert torch.equal(load_checkpoint(tmp_path / "w.safetensors")["fc.weight"], torch.ones(2, 3))
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 12)
    with pytest.raises(ZooError, match="bad.safetensors is damaged or not a safetensors file"):
        load_checkpoint(tmp_path / "bad.safetensors")


def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1}, path)

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ZooError,
                       match=r"cannot write .*last.pt \(No space left on device\); the previous checkpoint is intact"):
        save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1 and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_stale_temporaries_are_removed(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"x")
    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"half")
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == [".last.pt.abc123.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_flipped_bit_in_a_tensor_fails_the_archives_crc(tmp_path):
    """torch.load does not check the CRC-32 of a tensor's zip member; load_checkpoint does. A file saved with
    torch's CRCs turned off (they are then 0) still loads."""
    weights = torch.arange(1000.0)
    save_checkpoint({"model": {"w": weights}}, tmp_path / "last.pt")
    data = bytearray((tmp_path / "last.pt").read_bytes())
    middle = data.index(weights[500:502].numpy().tobytes())
    data[middle] ^= 0x01
    (tmp_path / "flipped.pt").write_bytes(bytes(data))
    assert torch.load(tmp_path / "flipped.pt", weights_only=True)["model"]["w"][500] != 500  # loaded, wrong
    with pytest.raises(ZooError,
                       match=r"flipped.pt is damaged \(Bad CRC-32 for file 'archive/data/0': its bytes changed"):
        load_checkpoint(tmp_path / "flipped.pt")
    torch.serialization.set_crc32_options(False)
    try:
        torch.save({"model": {"w": weights}}, tmp_path / "unchecked.pt")
    finally:
        torch.serialization.set_crc32_options(True)
    assert torch.equal(load_checkpoint(tmp_path / "unchecked.pt")["model"]["w"], weights)


def test_a_text_file_is_damaged_not_refused_and_a_plain_pickle_prints_no_warning(tmp_path, recwarn):
    (tmp_path / "notes.pt").write_text("These are my notes.\n")
    with pytest.raises(ZooError, match=r"^\S*notes.pt is damaged or not a PyTorch checkpoint \(unpickling failed: "
                                       r"Unsupported operand 84\); use another checkpoint$"):
        load_checkpoint(tmp_path / "notes.pt")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"a": 1}, protocol=5))
    with pytest.raises(ZooError, match="plain.pkl is damaged or not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "plain.pkl")
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]


def test_atomic_files_are_created_as_the_umask_says(tmp_path):
    """mkstemp's private 0600 is not kept: a run's files on a shared machine are as readable as open() makes them."""
    import os

    from zoo.rundir import atomic_write

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "shared.json", b"{}")
        os.umask(0o077)
        atomic_write(tmp_path / "private.json", b"{}")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600


def test_text_and_folders_given_as_checkpoints_are_one_line(tmp_path):
    from zoo.checkpoint import load_checkpoint

    (tmp_path / "notes.txt").write_text("just some text\n")
    with pytest.raises(ZooError, match=r"notes.txt is damaged or not a PyTorch checkpoint \(unpickling failed"):
        load_checkpoint(tmp_path / "notes.txt")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(ZooError, match=r"run is a folder without checkpoints/best.pt, not a checkpoint; give a "
                                       r"checkpoint file, or a run directory \(runs/<name>/<time>\)$"):
        load_checkpoint(tmp_path / "run")
    (tmp_path / "run" / "checkpoints" / "best.pt").write_bytes(b"")
    with pytest.raises(ZooError,
                       match=r"run/checkpoints/best.pt is damaged or not a PyTorch checkpoint \(an empty file\)"):
        load_checkpoint(tmp_path / "run")  # a run directory means its best.pt
