"""The machinery every exercise check shares: print ``[PASS]`` or ``[FAIL] ... Hint: ...``, never raise."""
from __future__ import annotations

import functools

__all__ = ["_check", "_expect", "_torch"]


class _Fail(Exception):
    """A wrong answer, with the message shown to the student."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise _Fail(message)


def _check(name: str, hint: str):
    """Turn a function that raises ``_Fail`` into a check that prints and returns a bool."""

    def decorate(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs) -> bool:
            try:
                fn(*args, **kwargs)
            except _Fail as e:
                print(f"[FAIL] {name}: {e}. Hint: {hint}")
                return False
            except NotImplementedError:
                print(f"[FAIL] {name}: not done yet; replace the `raise NotImplementedError` line with your code. "
                      f"Hint: {hint}")
                return False
            except Exception as e:  # the student's code crashed: say how, without a traceback
                print(f"[FAIL] {name}: your code raised {type(e).__name__}: {e}. Hint: {hint}")
                return False
            print(f"[PASS] {name}")
            return True

        return run

    return decorate


def _torch():
    import torch

    return torch


def _tensor_like(value, like, what: str):
    """``value`` as a float64 tensor, after checking it is a finite tensor shaped like ``like`` (lessons 11, 13)."""
    torch = _torch()
    _expect(isinstance(value, torch.Tensor), f"{what} should be a tensor, got {type(value).__name__}")
    _expect(tuple(value.shape) == tuple(like.shape), f"{what} should be shaped like its input "
            f"{tuple(like.shape)}, got {tuple(value.shape)}")
    _expect(bool(torch.isfinite(value).all()), f"{what} has NaN or infinite values")
    return value.detach().double()


def _near(a, b, tol: float = 1e-4) -> bool:
    """Same shape and equal within ``tol`` (relative and absolute)."""
    torch = _torch()
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=tol, atol=tol))


def _first_match(got, candidates: dict) -> None:
    """Fail with the message of the first known mistake (``{message: wrong answer or None}``) that ``got`` equals."""
    for message, wrong in candidates.items():
        if wrong is not None and _near(got, wrong):
            _expect(False, message)
