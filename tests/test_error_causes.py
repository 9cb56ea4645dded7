"""Errors keep their cause: a runtime's known failure is one BackendError line with the original chained, a bug
shows as itself; reading a video leaves the process's stderr alone."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch
from synthetic import make_sequence

from tracker import BackendError, SiamFCTracker
from tracker.backends.torch_backend import TorchBackend
from tracker.io import FrameSource

FRAME = np.zeros((120, 160, 3), np.uint8)


def failing_score(error: Exception):
    def score(self, kernel, search):
        raise error

    return score


def test_out_of_memory_is_one_line_with_its_cause(handset_weights, monkeypatch):
    t = SiamFCTracker(handset_weights, backend="torch", device="cpu")
    t.init(FRAME, (60, 50, 40, 30))
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")
    monkeypatch.setattr(TorchBackend, "score", failing_score(oom))
    with pytest.raises(BackendError) as info:
        t.update(FRAME)
    message = str(info.value)
    assert message == f"the {t.backend_name} backend failed: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert info.value.__cause__ is oom  # the runtime's own traceback stays reachable


def test_a_bug_is_not_disguised_as_a_backend_failure(handset_weights, monkeypatch):
    t = SiamFCTracker(handset_weights, backend="torch", device="cpu")
    t.init(FRAME, (60, 50, 40, 30))
    bug = RuntimeError("mat1 and mat2 shapes cannot be multiplied (3x256 and 255x17)")
    monkeypatch.setattr(TorchBackend, "score", failing_score(bug))
    with pytest.raises(RuntimeError) as info:
        t.update(FRAME)
    assert info.value is bug and not isinstance(info.value, BackendError)


def test_reading_frames_leaves_stderr_alone(tmp_path, monkeypatch):
    frames, _ = make_sequence(6, (160, 120), seed=2)
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (160, 120))
    for frame in frames:
        writer.write(frame)
    writer.release()
    source = FrameSource(path)
    redirects = []
    real = os.dup2
    monkeypatch.setattr(os, "dup2", lambda fd, fd2, *a: redirects.append(fd2) or real(fd, fd2, *a))
    assert len(list(source)) == 6
    source.close()
    assert redirects == []  # no frame read swaps out file descriptor 2 (other threads would lose their output)
