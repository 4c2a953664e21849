"""The attention keys and values of a conversation's fixed opening, computed once and reused by every batch.

Why: the LMM generator's conversations are a system message and a one-shot example (the same five openings on
every turn) followed by the person's prompt. Encoding those ~70 tokens again for each of the 5 conversations was
most of a proposal's prefill (on a 2-core AMD EPYC, 5 x 89 tokens took 1.9 s of a 7-8 s proposal). With the
openings cached, a batch encodes only each conversation's last turn.

A batch then has two padded parts: `[pad][opening][pad][last turn]`. Padding in the middle is fine because the
attention mask hides it and `generate` derives positions from the mask's running sum, so every real token keeps the
position it would have unpadded. Keys and values of an opening do not depend on what follows (causal attention),
so the cached ones are exactly those a full forward pass would compute.
"""

from __future__ import annotations

from collections import OrderedDict

import torch


class PrefixCache:
    """Keys and values per opening (a tuple of token ids), least recently used dropped beyond `capacity`."""

    def __init__(self, model, capacity: int = 32) -> None:
        self.model = model
        self.capacity = capacity
        self._states: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def states(self, opening: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (keys, values), each [1, kv_heads, len(opening), head_dim]; encoded on first use."""
        if opening in self._states:
            self._states.move_to_end(opening)
            return self._states[opening]
        ids = torch.tensor([opening], device=self.model.device)
        output = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
        states = [(layer.keys, layer.values) for layer in output.past_key_values.layers]
        self._states[opening] = states
        while len(self._states) > self.capacity:
            self._states.popitem(last=False)
        return states

    def batch(
        self, rows: list[list[int]], opening_lengths: list[int], pad_id: int
    ) -> tuple[torch.Tensor, torch.Tensor, object | None]:
        """`generate` inputs for token rows whose first `opening_lengths[i]` ids are a cacheable opening (0: none):
        (input_ids, attention_mask, cache), padded as `[pad][opening][pad][rest]`."""
        from transformers import DynamicCache

        if len(rows) != len(opening_lengths):
            raise ValueError(f"{len(rows)} rows but {len(opening_lengths)} opening lengths")
        width = max(opening_lengths)
        rest = max(len(row) - n for row, n in zip(rows, opening_lengths))
        ids, mask = [], []
        for row, n in zip(rows, opening_lengths):
            gap_before, gap_after = width - n, rest - (len(row) - n)
            ids.append([pad_id] * gap_before + row[:n] + [pad_id] * gap_after + row[n:])
            mask.append([0] * gap_before + [1] * n + [0] * gap_after + [1] * (len(row) - n))
        device = self.model.device
        input_ids = torch.tensor(ids, device=device)
        attention_mask = torch.tensor(mask, device=device)
        if width == 0:
            return input_ids, attention_mask, None
        layers = []
        per_row = [self.states(tuple(row[:n])) if n else None for row, n in zip(rows, opening_lengths)]
        template = next(s for s in per_row if s is not None)
        for layer, (k0, v0) in enumerate(template):
            keys, values = [], []
            for states, n in zip(per_row, opening_lengths):
                k, v = states[layer] if states is not None else (k0[..., :0, :], v0[..., :0, :])
                gap = (k.shape[0], k.shape[1], width - n, k.shape[3])
                keys.append(torch.cat([k.new_zeros(gap), k], dim=2))
                values.append(torch.cat([v.new_zeros(gap), v], dim=2))
            layers.append((torch.cat(keys), torch.cat(values)))
        return input_ids, attention_mask, DynamicCache(ddp_cache_data=layers, config=self.model.config)
