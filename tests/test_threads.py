"""Thread settings of the backends: per tracker, not per process; no spin-waiting where the runtime allows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tracker import machine
from tracker.backends import select, torch_backend
from tracker.backends.torch_backend import intra_op_threads


@pytest.fixture(autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIAMTRACK_CACHE", str(tmp_path_factory.getbasetemp() / "siamtrack-cache"))


def test_intra_op_threads_restores_the_process_setting():
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with intra_op_threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError), intra_op_threads(other):
        raise ValueError  # restored on the way out of an error too
    assert torch.get_num_threads() == before


def test_torch_backend_runs_its_own_thread_count(handset_weights, monkeypatch):
    seen = []
    backend = select.create_backend("torch", handset_weights, "cpu", threads=3)
    real = backend.model.backbone.forward
    monkeypatch.setattr(backend.model.backbone, "forward", lambda x: seen.append(torch.get_num_threads()) or real(x))
    before = torch.get_num_threads()
    kernel = backend.embed(np.zeros((1, 127, 127, 3), np.uint8))
    backend.score(kernel, np.zeros((3, 255, 255, 3), np.uint8))
    assert seen == [3, 3] and torch.get_num_threads() == before
    assert select.create_backend("torch", handset_weights, "cpu").threads == torch_backend.CPU_THREADS


def test_onnx_sessions_do_not_spin(handset_weights):
    backend = select.create_backend("onnx", handset_weights, "cpu", threads=2)
    for session in (backend._exemplar, backend._search):
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.intra_op_num_threads == 2


@pytest.mark.parametrize(
    ("flags", "expected"),
    [({"avx512f", "avx512_vnni"}, False), ({"avx512f", "avx512_bf16"}, True), ({"amx_bf16"}, True), (None, True)],
)
def test_fast_bf16_needs_native_bf16_flags(flags, expected, monkeypatch):
    # oneDNN emulates bf16 on plain AVX-512 (4x slower than fp32 there): the CPU flags decide on Linux
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    monkeypatch.setattr(machine, "cpu_flags", lambda: flags)
    assert machine.cpu_has_fast_bf16() is expected
