"""Packed rows behind a shared prefix give the logits of each row read on its own, step after step."""

import pytest
import torch
from tiny_models import tiny_model, tiny_tokenizer

from persona.engine.packing import Packed, plan


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest)


def _naive_logits(model, seq):
    with torch.no_grad():
        return model(input_ids=torch.tensor([seq]), use_cache=False).logits[0].float()


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2", "gemma3"])
def test_packed_prefill_and_decode_steps_equal_separate_forwards(family):
    tok = tiny_tokenizer()
    model = tiny_model(family, tok)
    gen = torch.Generator().manual_seed(0)
    prefix = torch.randint(3, len(tok), (45,), generator=gen).tolist()  # longer than gemma3's window of 32
    rows = [torch.randint(3, len(tok), (n,), generator=gen).tolist() for n in (5, 9, 3)]
    steps = [torch.randint(3, len(tok), (len(rows),), generator=gen).tolist() for _ in range(3)]
    many_rows = Packed.supports_rows(model, len(rows), len(steps) + 1)
    assert many_rows == (family != "gemma3")  # sliding-window caches: one row per packed sequence
    groups = [list(range(len(rows)))] if many_rows else [[r] for r in range(len(rows))]
    for group in groups:
        with torch.no_grad():
            packed = Packed.start(model, prefix)
            fed = [rows[r] for r in group]
            positions = [list(range(len(prefix), len(prefix) + len(x))) for x in fed]
            ends = [sum(len(x) for x in fed[: j + 1]) - 1 for j in range(len(fed))]
            got = [packed.extend(fed, positions, ends)]
            for k, step in enumerate(steps):
                tokens = [[step[r]] for r in group]
                pos = [[len(prefix) + len(rows[r]) + k] for r in group]
                got.append(packed.extend(tokens, pos, list(range(len(group))), row_ids=list(range(len(group)))))
        for j, r in enumerate(group):
            seq = prefix + rows[r]
            want = [_naive_logits(model, seq)[-1]]
            for step in steps:
                seq = seq + [step[r]]
                want.append(_naive_logits(model, seq)[-1])
            for k, (g, w) in enumerate(zip(got, want)):
                torch.testing.assert_close(g[j], w, atol=1e-4, rtol=1e-4, msg=f"{family} row {r} step {k}")


def test_plan_groups_by_system_and_finds_the_shared_prefix():
    ids = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [1, 2, 3, 4, 5, 6, 7, 8, 9, 12], [1, 2, 3], [7, 7]]
    groups = plan(["s", "s", None, None], ids, batch_size=8)
    assert groups[0] == ([1, 2, 3, 4, 5, 6, 7, 8, 9], [[1, 0]])  # rows sorted by length
    assert groups[1] == ([], [[3, 2]])  # no shared prefix of 8 tokens
    assert plan(["s", "s"], ids[:2], batch_size=8, share_prefix=False)[0][0] == []  # sharing switched off
