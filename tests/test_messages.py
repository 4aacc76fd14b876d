"""One-line messages that name the problem and a fix that works (issue 20, item 14) and the demo's
closing hint (item 5)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import lsalsa
from lsalsa import cli


def test_dtype_hint_is_a_conversion_that_works():
    problem = lsalsa.LassoProblem(torch.eye(4))
    with pytest.raises(lsalsa.LsalsaError, match=r"^Y: dtype torch.int64 does not match the problem's torch.float32; "
                                                 r"convert it to the problem's \(e.g. Y.to\(torch.float32\)\)$"):
        lsalsa.salsa(problem, torch.ones(2, 4, dtype=torch.int64))
    with pytest.raises(lsalsa.LsalsaError, match=r"convert one of them \(e.g. problem.to\(dtype=torch.float64\)\)$"):
        lsalsa.salsa(problem, torch.ones(2, 4, dtype=torch.float64))
    problem.to(dtype=torch.float64)  # the float hint is itself valid


def test_a_tiny_column_is_not_called_zero():
    A = torch.eye(4, dtype=torch.float64)
    A[:, 2] = 1e-300  # its squares underflow: the norm is 0, the column is not
    with pytest.raises(lsalsa.LsalsaError, match=r"^A: column\(s\) \[2\] are so small that their norm underflows in "
                                                 r"torch.float64; rescale A"):
        lsalsa.LassoProblem(A)
    A[:, 2] = 0
    with pytest.raises(lsalsa.LsalsaError, match=r"column\(s\) \[2\] are all zero"):
        lsalsa.LassoProblem(A)


def test_hint_repeats_the_command_as_it_was_started(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/some/venv/bin/lsalsa", "demo"])
    assert cli._this_command() == "/some/venv/bin/lsalsa"
    monkeypatch.setattr(sys, "argv", [str(Path(cli.__file__).with_name("__main__.py")), "demo"])
    assert cli._this_command() == f"{sys.executable} -m lsalsa"


def test_a_positive_count_says_so_for_negatives_too():
    problem = lsalsa.LassoProblem(torch.eye(4))
    for bad in (-3, 0, 2.5):
        with pytest.raises(lsalsa.LsalsaError, match=rf"^max_iter: expected an integer >= 1, got {bad}$"):
            lsalsa.salsa(problem, torch.ones(2, 4), max_iter=bad)
    with pytest.raises(lsalsa.LsalsaError, match=r"^n_iter: expected an integer >= 0, got -1$"):
        lsalsa.salsa(problem, torch.ones(2, 4), n_iter=-1)
