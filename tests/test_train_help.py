"""`python -m train --help` shows the defaults the options fall back to."""

from __future__ import annotations

import pytest

from train.__main__ import parse_args
from train.loop import TrainConfig


def test_help_shows_the_training_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps long help lines
    d = TrainConfig()
    for option, default in [("--steps", d.steps), ("--batch-size", d.batch_size), ("--lr", f"{d.lr:g}"),
                            ("--val-every", d.val_every), ("--workers", d.workers)]:  # fmt: skip
        after = text.rsplit(f"{option} {option.lstrip('-').replace('-', '_').upper()}", 1)[1]  # not the usage line
        assert f"(default {default})" in after.split(" --", 1)[0], option
