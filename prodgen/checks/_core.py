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
