"""The lesson-02 exercise checks, on a right answer, wrong answers and an unfinished one."""
from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from prodgen import checks
from prodgen.models import text


def _run(check, *answer, capsys):
    ok = check(*answer)
    out = capsys.readouterr().out
    assert out.count("\n") == 1, f"a check prints exactly one line, got {out!r}"
    return ok, out


def _not_done(*args):
    raise NotImplementedError("Exercise not done yet.")


# ----------------------------------------------------------------------------- answers
def _tok_upper(t):
    if not t.strip():
        raise ValueError("blank")
    return re.findall(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*|\S", t)


def _tok_words(t):  # \w glues Chinese characters together
    if not t.strip():
        raise ValueError("blank")
    return re.findall(r"[\w-]+|\S", t.lower())


def _tok_split_hyphen(t):
    if not t.strip():
        raise ValueError("blank")
    return re.findall(r"[a-z0-9]+|\S", t.lower())


def _tok_no_blank_check(t):
    return re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*|\S", t.lower())


def _pad(seqs):
    lengths = torch.tensor([len(s) for s in seqs])
    ids = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
    return ids, lengths


def _pad_front(seqs):
    ids, lengths = _pad(seqs)
    return torch.stack([torch.roll(row, int(ids.shape[1] - n)) for row, n in zip(ids, lengths)]), lengths


def _mean_over_t(x, lengths):
    return x.mean(1)


def _mean_no_mask(x, lengths):
    return x.sum(1) / lengths[:, None]


class _NoPacking(text.GRUEncoder):
    def forward(self, ids, lengths):  # reads the padding
        _, h = self.gru(self.embed(ids))
        return torch.tanh(self.proj(torch.cat([h[0], h[1]], 1)))


class _ForwardOnly(text.GRUEncoder):
    def forward(self, ids, lengths):  # only the forward direction, twice
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths, batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)
        return torch.tanh(self.proj(torch.cat([h[0], h[0]], 1)))


class _OtherLayers(nn.Module):
    def __init__(self, vocab_size, embed_dim=64, hidden=64, dim=64):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, embed_dim)

    def forward(self, ids, lengths):
        return self.emb(ids).mean(1)


class _Unfinished(text.GRUEncoder):
    def forward(self, ids, lengths):
        raise NotImplementedError("Exercise not done yet.")


CASES = {
    "tokenize": (checks.check_tokenize, (text.tokenize,),
                 [(_tok_upper,), (_tok_words,), (_tok_split_hyphen,), (_tok_no_blank_check,), (lambda t: t.split(),),
                  (_not_done,)]),
    "padding": (checks.check_padding, (_pad, text.masked_mean),
                [(_pad_front, text.masked_mean), (lambda s: (torch.tensor([1]), torch.tensor([1])), text.masked_mean),
                 (_pad, _mean_over_t), (_pad, _mean_no_mask), (_not_done, text.masked_mean), (_pad, _not_done)]),
    "gru_encoder": (checks.check_gru_encoder, (text.GRUEncoder,),
                    [(_NoPacking,), (_ForwardOnly,), (_OtherLayers,), (_Unfinished,), (42,)]),
}


@pytest.mark.parametrize("name", CASES)
def test_check_passes_a_right_answer(name, capsys):
    check, right, _ = CASES[name]
    ok, out = _run(check, *right, capsys=capsys)
    assert ok and out.startswith("[PASS]"), out


@pytest.mark.parametrize("name", CASES)
def test_check_fails_wrong_answers_with_a_hint(name, capsys):
    check, _, wrongs = CASES[name]
    for wrong in wrongs:
        ok, out = _run(check, *wrong, capsys=capsys)
        assert ok is False and out.startswith("[FAIL]") and "Hint:" in out, out


def test_failures_say_what_is_wrong(capsys):
    assert "lower-case" in _run(checks.check_tokenize, _tok_upper, capsys=capsys)[1]
    assert "Chinese character" in _run(checks.check_tokenize, _tok_words, capsys=capsys)[1]
    assert "hyphenated" in _run(checks.check_tokenize, _tok_split_hyphen, capsys=capsys)[1]
    assert "ValueError" in _run(checks.check_tokenize, _tok_no_blank_check, capsys=capsys)[1]
    assert "not done yet" in _run(checks.check_tokenize, _not_done, capsys=capsys)[1]
    assert "divide by each row's length" in _run(checks.check_padding, _pad, _mean_over_t, capsys=capsys)[1]
    assert "mask" in _run(checks.check_padding, _pad, _mean_no_mask, capsys=capsys)[1]
    assert "padding changed" in _run(checks.check_gru_encoder, _NoPacking, capsys=capsys)[1]
    assert "both directions" in _run(checks.check_gru_encoder, _ForwardOnly, capsys=capsys)[1]
    assert "not done yet" in _run(checks.check_gru_encoder, _Unfinished, capsys=capsys)[1]
