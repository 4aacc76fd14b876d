"""Atomic writes leave the old file or the new one, never a part; reads name the bad file."""
import numpy as np
import pytest
import torch

from lsalsa import LsalsaError
from lsalsa.files import (FORMAT_VERSION, atomic_write, load_npz, read_json, read_torch, save_npz, save_torch,
                          write_json, write_text)


def test_round_trips(tmp_path):
    save_npz(tmp_path / "a.npz", x=np.arange(3), y=np.eye(2))
    got = load_npz(tmp_path / "a.npz")
    assert sorted(got) == ["x", "y"] and got["x"].tolist() == [0, 1, 2]
    save_npz(tmp_path / "a.bin", x=np.arange(2))  # another suffix: written where asked, nothing added
    assert load_npz(tmp_path / "a.bin")["x"].tolist() == [0, 1]
    write_json(tmp_path / "r.json", {"psnr": np.float32(12.5), "n": 3})
    assert read_json(tmp_path / "r.json") == {"psnr": 12.5, "n": 3}
    write_text(tmp_path / "sub" / "r.md", "é\n")
    assert (tmp_path / "sub" / "r.md").read_text(encoding="utf-8") == "é\n"
    save_torch({"format": "f", "version": FORMAT_VERSION, "t": torch.ones(2)}, tmp_path / "m.pt")
    assert read_torch(tmp_path / "m.pt", ("g", "f"))["t"].tolist() == [1.0, 1.0]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.bin", "a.npz", "m.pt", "r.json", "r.md", "sub"]


def test_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "x.txt"
    write_text(target, "old")

    def half_then_fail(tmp):
        assert tmp.parent == tmp_path and tmp.name.endswith(".txt") and tmp != target
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_reads_name_the_file(tmp_path):
    for read in (load_npz, read_json, lambda p: read_torch(p, "f")):
        with pytest.raises(LsalsaError, match="none: no such file"):
            read(tmp_path / "none")
    (tmp_path / "cut.npz").write_bytes(b"PK\x03\x04 cut")
    (tmp_path / "cut.json").write_text("{")
    (tmp_path / "cut.pt").write_bytes(b"\x80\x02 cut")
    np.save(tmp_path / "a.npy", np.arange(2))
    save_npz(tmp_path / "obj.npz", x=np.array([object()], dtype=object))
    for name in ("cut.npz", "a.npy", "obj.npz"):
        with pytest.raises(LsalsaError, match=f"{name}: cannot be read"):
            load_npz(tmp_path / name)
    with pytest.raises(LsalsaError, match="cut.json: cannot be read as JSON"):
        read_json(tmp_path / "cut.json")
    with pytest.raises(LsalsaError, match="cut.pt: not a readable lsalsa file"):
        read_torch(tmp_path / "cut.pt", "f")
    save_torch({"format": "f", "version": FORMAT_VERSION + 1}, tmp_path / "new.pt")
    with pytest.raises(LsalsaError, match="new.pt: format version"):
        read_torch(tmp_path / "new.pt", "f")
    with pytest.raises(LsalsaError, match="new.pt: expected an lsalsa file of format g, found 'f'"):
        read_torch(tmp_path / "new.pt", "g")
