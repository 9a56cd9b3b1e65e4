"""Checks for lesson 02 (encoding descriptions): the tokenizer, padding and masks, the GRU encoder."""
from __future__ import annotations

import re

from prodgen.checks._core import _check, _expect, _torch

__all__ = ["check_tokenize", "check_padding", "check_gru_encoder"]

_TOKEN_CASES = {
    "A large RED T-shirt, by Acme.": ["a", "large", "red", "t-shirt", ",", "by", "acme", "."],
    "大号红色条纹T恤，Acme品牌": ["大", "号", "红", "色", "条", "纹", "t", "恤", "，", "acme", "品", "牌"],
    "Zenith's  grass-green mug": ["zenith", "'", "s", "grass-green", "mug"],
}


# ------------------------------------------------------------------ exercise 1
@_check("tokenizer", "lower-case the text, then re.findall(r\"[a-z0-9]+(?:-[a-z0-9]+)*|\\S\", text); "
        "raise ValueError when text.strip() is empty")
def check_tokenize(tokenize) -> None:
    """Lesson 02: English words lower-cased, hyphenated words whole, punctuation and each
    Chinese character a token of its own, a blank description a ``ValueError``."""
    for text, expected in _TOKEN_CASES.items():
        out = tokenize(text)
        _expect(isinstance(out, list), f"tokenize should return a list of strings, got {type(out).__name__}")
        _expect(all(isinstance(t, str) for t in out), "every token should be a string")
        if out != expected:
            _expect(not any(t != t.lower() for t in out), f"tokenize({text!r}) kept upper case letters in {out}: "
                    "lower-case the text first")
            _expect(not any(len(t) > 1 and re.search(r"[\u4e00-\u9fff]", t) for t in out),
                    f"tokenize({text!r}) gave {out}: each Chinese character should be a token of its own")
            _expect(not any(len(t) > 1 and re.search(r"[,.，'!]", t) for t in out),
                    f"tokenize({text!r}) gave {out}: punctuation should be split off as its own token")
            _expect("-" not in out, f"tokenize({text!r}) gave {out}: keep hyphenated words like 't-shirt' whole")
            _expect(False, f"tokenize({text!r}) should give {expected}, got {out}")
    for blank in ("", "   "):
        try:
            tokenize(blank)
        except ValueError:
            continue
        _expect(False, f"tokenize({blank!r}) should raise a ValueError: a blank description describes nothing")


# ------------------------------------------------------------------ exercise 2
@_check("padding and masks", "pad_batch: ids = torch.zeros(N, longest, dtype=torch.long), copy each sequence into "
        "its row; masked_mean: mask = torch.arange(T) < lengths[:, None], sum x * mask[..., None] over T, "
        "divide by lengths")
def check_padding(pad_batch, masked_mean) -> None:
    """Lesson 02: ``pad_batch(list of id lists) -> (ids N x T, lengths N)`` padded with 0, and
    ``masked_mean(x N x T x E, lengths) -> N x E`` that ignores whatever sits in the padding."""
    torch = _torch()
    seqs = [[5, 6, 7], [8], [9, 10]]
    out = pad_batch(seqs)
    _expect(isinstance(out, tuple) and len(out) == 2, "pad_batch should return a pair (ids, lengths)")
    ids, lengths = out
    _expect(isinstance(ids, torch.Tensor) and isinstance(lengths, torch.Tensor), "ids and lengths should be tensors")
    _expect(ids.dtype == torch.long and lengths.dtype == torch.long,
            f"ids and lengths should be LongTensors (dtype=torch.long), got {ids.dtype} and {lengths.dtype}")
    _expect(tuple(ids.shape) == (3, 3),
            f"3 sequences, the longest 3 tokens: ids should be 3 x 3, got {tuple(ids.shape)}")
    _expect(lengths.tolist() == [3, 1, 2], f"lengths should be [3, 1, 2] (real tokens per row), got {lengths.tolist()}")
    _expect(ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]],
            f"ids should be [[5, 6, 7], [8, 0, 0], [9, 10, 0]] (each row padded with 0 at the end), got {ids.tolist()}")

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 2, generator=g)
    lengths = torch.tensor([4, 1, 2])
    expected = torch.stack([x[i, :n].mean(0) for i, n in enumerate(lengths.tolist())])
    got = masked_mean(x, lengths)
    _expect(isinstance(got, torch.Tensor), f"masked_mean should return a tensor, got {type(got).__name__}")
    _expect(tuple(got.shape) == (3, 2), f"masked_mean of a 3 x 4 x 2 tensor should be 3 x 2, got {tuple(got.shape)}")
    padded_zero = x.clone()
    for i, n in enumerate(lengths.tolist()):
        padded_zero[i, n:] = 0
    if not torch.allclose(got, expected, atol=1e-5):
        zeros_ok = torch.allclose(masked_mean(padded_zero, lengths), expected, atol=1e-5)
        _expect(zeros_ok, "the mean should divide by each row's length, not by T: padding must not count")
        _expect(False, "the values in the padding changed the mean: multiply by the mask before summing")


# ------------------------------------------------------------------ exercise 3
@_check("GRU encoder", "embed the ids, pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False), "
        "run self.gru, concatenate the final states h[0] and h[1], then torch.tanh(self.proj(...))")
def check_gru_encoder(encoder_class) -> None:
    """Lesson 02: a GRU encoder whose forward gives the reference's ``N x D`` vectors and
    ignores padding. The class must keep the layers the lesson's ``__init__`` defines."""
    torch = _torch()
    from prodgen.models.text import GRUEncoder

    torch.manual_seed(0)
    reference = GRUEncoder(30, embed_dim=8, hidden=6, dim=5).eval()
    try:
        student = encoder_class(30, embed_dim=8, hidden=6, dim=5)
    except TypeError as e:
        _expect(False, f"could not build it as encoder_class(30, embed_dim=8, hidden=6, dim=5) ({e}); keep the "
                "lesson's __init__")
    try:
        student.load_state_dict(reference.state_dict())
    except RuntimeError:
        _expect(False, "its layers differ from the lesson's (embed, gru, proj): keep the __init__ as given")
    student.eval()
    ids = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 0, 0, 0], [10, 11, 12, 0, 0]])
    lengths = torch.tensor([5, 2, 3])
    with torch.no_grad():
        out = student(ids, lengths)
        _expect(isinstance(out, torch.Tensor), f"forward should return a tensor, got {type(out).__name__}")
        _expect(tuple(out.shape) == (3, 5),
                f"3 descriptions, dim 5: forward should return 3 x 5, got {tuple(out.shape)}")
        more_padding = torch.cat([ids, torch.zeros(3, 4, dtype=torch.long)], 1)
        alone = student(ids[1:2, :2], lengths[1:2])
        _expect(torch.allclose(student(more_padding, lengths), out, atol=1e-5)
                and torch.allclose(alone, out[1:2], atol=1e-5),
                "extra padding changed the output: the GRU must stop at each description's length "
                "(pack the batch with pack_padded_sequence)")
        expected = reference(ids, lengths)
        _expect(torch.allclose(out, expected, atol=1e-5),
                "the output differs from the reference: use the final hidden states of both directions "
                "(h[0] forward, h[1] backward), concatenate them, project with self.proj and apply tanh")
