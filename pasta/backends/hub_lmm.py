"""Chat models behind the LMM candidate generator: a local transformers model or an OpenAI-compatible endpoint.

Both turn conversations in the OpenAI chat format ([{"role": ..., "content": ...}, ...]) into reply texts, so
`LMMGenerator` works the same on a GGUF SmolLM2 on a laptop CPU, a chat model on a Space's GPU, or a vLLM, Ollama,
TGI or hosted-API server. Failures surface as exceptions (`LMMError` for endpoints); the generator upstream falls
back to retrieval candidates, so a broken model never reaches the user.
"""

from __future__ import annotations

import logging
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, get_args, runtime_checkable

import torch

from pasta import torch_thread
from pasta.backends import gguf_cache
from pasta.backends.hub_t2i import cannot_load, default_dtype
from pasta.backends.prefix_cache import PrefixCache
from pasta.config import LMMQuantize
from pasta.console import silenced_stderr

Messages = list[dict[str, str]]
log = logging.getLogger(__name__)


class LMMError(RuntimeError):
    """A chat model or endpoint failed (unreachable, timed out, HTTP error, unreadable reply)."""


@runtime_checkable
class ChatModel(Protocol):
    def complete(self, messages: Messages, max_new_tokens: int, n: int = 1) -> list[str]:
        """n sampled replies to one conversation."""
        ...

    def complete_batch(self, conversations: list[Messages], max_new_tokens: int) -> list[str]:
        """One reply per conversation, in order."""
        ...


class _StopWhenPreempted:
    """A `generate` stopping criterion: background decoding stops at the next token when someone is waiting."""

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), torch_thread.preempted(), dtype=torch.bool, device=input_ids.device)


FLOAT_LAYERS = ("down_proj", "fc2", "dense_4h_to_h", "w2")
"""Linear layers left in float by `int8_linear_layers`: the MLPs' output projections (Llama, OPT, GPT-NeoX, Mixtral
names). Their inputs carry the few huge activations that per-tensor int8 rounds away (Dettmers et al. 2022,
LLM.int8()): with them in int8, 39-45 % of SmolLM2's 25 candidates were its own (the rest retrieval's top-up)
instead of 67-68 % in float; left in float, 62-66 % (16 bench prompts, sampled, 16 or 32 proposals a run)."""


def int8_linear_layers(model: torch.nn.Module) -> bool:
    """Replace the model's `nn.Linear` layers, in place, by dynamically quantized int8 ones (int8 weights,
    activations quantized per call; torch's own int8 kernels), all but `FLOAT_LAYERS`. Returns False, leaving the
    model as it was, where this torch has no dynamic quantization.

    Why: decoding a small chat model on a CPU is bound by reading its float32 weights once per token, and int8
    weights are a quarter of the bytes: on 2 cores SmolLM2-135M proposed 25 candidates in 1.4-1.6 s instead of
    3.2-3.3 s (`pasta bench propose --generators lmm`, then with `--lmm-quantize none`)."""
    import warnings

    try:
        from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic
    except ImportError:
        log.warning("this torch has no dynamic quantization: the chat model runs in float")
        return False
    layers = {
        name: default_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] not in FLOAT_LAYERS
    }
    with warnings.catch_warnings():  # torch 2.10+ points eager quantization at torchao; it works as before
        warnings.simplefilter("ignore")
        quantize_dynamic(model, layers, dtype=torch.qint8, inplace=True)
    return True


class TransformersChatModel:
    """A local causal LM with a chat template: by id, by folder, or from a GGUF file in a folder (`gguf_file`).

    Conversations are batched with padding on the left of each part, so every reply starts right after its own
    prompt; each conversation's opening (every message but the last: system message, few-shot examples) is encoded
    once and reused (`PrefixCache`), and only the new tokens are decoded. `temperature=0` gives greedy, reproducible
    replies. On a CPU, `quantize="int8"` runs the linear layers in int8 (`int8_linear_layers`).
    """

    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        gguf_file: str | None = None,
        temperature: float = 0.8,
        top_p: float = 0.95,
        quantize: LMMQuantize = "none",
    ) -> None:
        if quantize not in get_args(LMMQuantize):
            raise ValueError(f"quantize={quantize!r} is not allowed: choose one of {', '.join(get_args(LMMQuantize))}")
        self.model_name = str(model)
        self.device = torch.device(device)
        self.dtype = dtype or default_dtype(self.device)
        self.temperature = temperature
        self.top_p = top_p
        self.tokenizer, self.model = self._load(gguf_file)
        if not self.tokenizer.chat_template:
            raise ValueError(f"{self.model_name!r} has no chat template: use an instruct/chat model")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.to(self.device).eval()
        self.quantized = quantize == "int8" and self.device.type == "cpu" and int8_linear_layers(self.model)
        self._lock = threading.Lock()  # the model and its cache of openings serve one batch at a time
        self._openings = PrefixCache(self.model)

    def _load(self, gguf_file: str | None):
        """(tokenizer, model): from the model's id or folder, or from a GGUF file in that folder, converted once
        and then read from the cache (`pasta.backends.gguf_cache`)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        converted = gguf_cache.converted_folder(self.model_name, gguf_file, self.dtype) if gguf_file else None
        if converted is not None and gguf_cache.is_complete(converted):
            try:
                tokenizer = AutoTokenizer.from_pretrained(converted)
                model = AutoModelForCausalLM.from_pretrained(converted, dtype=self.dtype)
                gguf_cache.mark_used_and_prune(converted)
                return tokenizer, model
            except Exception as error:  # an unreadable cache is rebuilt, never fatal
                log.warning("the converted model in %s does not load (%s): converting the GGUF again", converted, error)
                shutil.rmtree(converted, ignore_errors=True)
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            with silenced_stderr():  # a GGUF load draws a de-quantizing bar nobody can turn off
                tokenizer = AutoTokenizer.from_pretrained(self.model_name, **extra)
                model = AutoModelForCausalLM.from_pretrained(self.model_name, dtype=self.dtype, **extra)
        except OSError as error:
            raise OSError(cannot_load("chat model", self.model_name, error)) from error
        if converted is not None and gguf_cache.save_converted(model, tokenizer, converted):
            gguf_cache.mark_used_and_prune(converted)
        return tokenizer, model

    def complete(self, messages: Messages, max_new_tokens: int, n: int = 1) -> list[str]:
        return self._generate([messages] * n, max_new_tokens)

    def complete_batch(self, conversations: list[Messages], max_new_tokens: int) -> list[str]:
        return self._generate(conversations, max_new_tokens)

    @torch.inference_mode()
    def _generate(self, conversations: list[Messages], max_new_tokens: int) -> list[str]:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens} must be at least 1")
        if not conversations:
            return []
        sampling = {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p}
        with self._lock:
            rows, openings = self._tokenize(conversations)
            input_ids, attention_mask, cache = self._openings.batch(rows, openings, self.tokenizer.pad_token_id)
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                cache=cache,
                max_new_tokens=max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                stopping_criteria=[_StopWhenPreempted()],
                **(sampling if self.temperature > 0 else {"do_sample": False}),
            )
            if torch_thread.preempted():
                raise torch_thread.Preempted("LMM decoding gave way to interactive work")
            new_tokens = output[:, input_ids.shape[1] :]
            return [text.strip() for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def _tokenize(self, conversations: list[Messages]) -> tuple[list[list[int]], list[int]]:
        """Token ids per conversation, and how many of them are its opening (every message but the last), which
        `PrefixCache` encodes once. An opening that does not tokenize as a prefix of the whole counts as none."""

        def ids(chats: list[Messages], **kwargs) -> list[list[int]]:
            return self.tokenizer.apply_chat_template(
                chats,
                sanitize_control_tokens=True,
                return_dict=True,
                **kwargs,  # a typed "<|im_end|>" stays text
            )["input_ids"]

        rows = ids(conversations, add_generation_prompt=True)
        openings = [0] * len(rows)
        with_opening = [i for i, c in enumerate(conversations) if len(c) > 1]
        if with_opening:
            for i, opening in zip(with_opening, ids([conversations[i][:-1] for i in with_opening])):
                if len(opening) < len(rows[i]) and rows[i][: len(opening)] == opening:
                    openings[i] = len(opening)
        return rows, openings


def _content(choice: dict) -> str:
    content = choice["message"]["content"]
    if content is None:  # e.g. a refusal or a tool call: no text
        return ""
    if not isinstance(content, str):
        raise TypeError(f"message content is a {type(content).__name__}, not text")
    return content


class OpenAIChatModel:
    """Any OpenAI-compatible `/chat/completions` endpoint (vLLM, Ollama, TGI, hosted APIs) over plain HTTP."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        timeout: float = 30.0,
        temperature: float = 0.8,
        max_workers: int = 8,
    ) -> None:
        import httpx

        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url={base_url!r} must be an http:// or https:// URL")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout = timeout
        self.temperature = temperature
        self.max_workers = max_workers
        self._api_key = api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout)

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIChatModel(url={self.url!r}, model={self.model!r}, api_key={'***' if self._api_key else ''!r})"

    def complete(self, messages: Messages, max_new_tokens: int, n: int = 1) -> list[str]:
        """n replies; servers that ignore `n` (e.g. Ollama) are asked again for the rest."""
        replies: list[str] = []
        while len(replies) < n:
            more = self._request(messages, max_new_tokens, n - len(replies))
            if not more:
                raise LMMError(f"{self.url} returned no choices")
            replies += more
        return replies[:n]

    def complete_batch(self, conversations: list[Messages], max_new_tokens: int) -> list[str]:
        """One reply per conversation; requests run concurrently, as the server batches them anyway."""
        if not conversations:
            return []
        workers = max(1, min(self.max_workers, len(conversations)))
        with ThreadPoolExecutor(workers) as pool:
            return [r[0] for r in pool.map(lambda m: self.complete(m, max_new_tokens), conversations)]

    def close(self) -> None:
        self._client.close()

    def _request(self, messages: Messages, max_new_tokens: int, n: int) -> list[str]:
        import httpx

        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_new_tokens,
            "temperature": self.temperature,
            "n": n,
        }
        try:
            response = self._client.post(self.url, json=body)
        except httpx.TimeoutException as error:
            raise LMMError(f"{self.url} did not answer within {self.timeout} s") from error
        except httpx.HTTPError as error:
            raise LMMError(f"could not reach {self.url}: {type(error).__name__}: {error}") from error
        if not response.is_success:
            raise LMMError(f"{self.url} answered HTTP {response.status_code}: {self._excerpt(response.text)}")
        try:
            return [_content(choice) for choice in response.json()["choices"]]
        except (ValueError, KeyError, TypeError) as error:
            raise LMMError(f"{self.url} sent an unreadable reply: {self._excerpt(response.text)}") from error

    def _excerpt(self, text: str, limit: int = 200) -> str:
        text = " ".join(text.split())[:limit]
        return text.replace(self._api_key, "***") if self._api_key else text
