"""Hub-tier backends, tested offline on tiny random-initialized models saved with `save_pretrained` to a temp dir
(as diffusers' own tests do), loaded back through the same code path as real hub models. The chat endpoint is a
fake HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from PIL import Image

from pasta.contracts import Embedder, TextToImage

# ---------------------------------------------------------------------------------------------------------------
# tiny components

LETTERS = "abcdefghijklmnopqrstuvwxyz"
CLIP_MERGES = [("c", "a"), ("ca", "t</w>"), ("d", "o"), ("do", "g</w>"), ("r", "e"), ("re", "d</w>")]


def tiny_clip_tokenizer():
    """A CLIP BPE tokenizer from an in-memory vocab and merges (transformers 5.x ignores file paths given to the
    constructor, so the vocabulary must be passed as data)."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in [*LETTERS, *(c + "</w>" for c in LETTERS), *(a + b for a, b in CLIP_MERGES)]:
        vocab[token] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=CLIP_MERGES, model_max_length=77)


def assert_known_clip_encoding(tokenizer) -> None:
    vocab = tokenizer.get_vocab()
    expected = [0, vocab["a</w>"], vocab["red</w>"], vocab["cat</w>"], vocab["x</w>"], 1]
    assert tokenizer("A red  cat x").input_ids == expected


def tiny_clip_text_config(**extra):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        vocab_size=1000,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        **extra,
    )


def tiny_unet(cross_attention_dim: int = 32):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
    )


LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def save_lora(unet, folder, targets=LORA_TARGETS) -> None:
    """A peft LoRA adapter on `unet` whose weights are perturbed (B is zero at init) so it changes the output."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(unet, LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=targets))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    model.save_pretrained(folder)


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    """A tiny Stable Diffusion pipeline folder, as `save_pretrained` writes it."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="trailing"
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(tiny_clip_text_config()),
        tokenizer=tiny_clip_tokenizer(),
        unet=tiny_unet(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    folder = tmp_path_factory.mktemp("tiny-sd")
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def t2i(sd_folder):
    from pasta.backends.hub_t2i import HubTextToImage

    return HubTextToImage(str(sd_folder), device="cpu", num_inference_steps=2, height=32, width=32)


@pytest.fixture(scope="module")
def lora_folder(sd_folder, tmp_path_factory):
    from diffusers import UNet2DConditionModel

    folder = tmp_path_factory.mktemp("lora")
    save_lora(UNet2DConditionModel.from_pretrained(sd_folder / "unet"), folder)
    return folder


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


# ---------------------------------------------------------------------------------------------------------------
# text-to-image


def test_tiny_clip_tokenizer_has_the_expected_ids_before_and_after_saving(sd_folder):
    from transformers import AutoTokenizer

    assert_known_clip_encoding(tiny_clip_tokenizer())
    assert_known_clip_encoding(AutoTokenizer.from_pretrained(sd_folder / "tokenizer"))


def test_hub_t2i_renders_n_images_per_prompt(t2i, sd_folder):
    assert isinstance(t2i, TextToImage)
    assert_known_clip_encoding(t2i.pipe.tokenizer)  # the pipeline loaded the tokenizer we saved
    out = t2i.generate(["a red cat", "a dog"], seeds=[1, 2], n_per_prompt=2)
    assert [len(images) for images in out] == [2, 2]
    for image in (im for images in out for im in images):
        assert isinstance(image, Image.Image) and image.size == (32, 32) and image.mode == "RGB"
    assert not np.array_equal(pixels(out[0][0]), pixels(out[0][1]))  # a column's images differ
    assert t2i.generate([], seeds=[]) == []


def test_hub_t2i_images_depend_only_on_prompt_and_seed(t2i):
    together = t2i.generate(["a red cat", "a dog"], seeds=[1, 2], n_per_prompt=2)
    alone = t2i.generate(["a dog"], seeds=[2], n_per_prompt=2)
    swapped = t2i.generate(["a dog", "a cat"], seeds=[2, 7], n_per_prompt=2)
    for a, b, c in zip(together[1], alone[0], swapped[0]):
        assert np.array_equal(pixels(a), pixels(b)) and np.array_equal(pixels(a), pixels(c))
    other_seed = t2i.generate(["a dog"], seeds=[3], n_per_prompt=1)
    assert not np.array_equal(pixels(other_seed[0][0]), pixels(alone[0][0]))


def test_hub_t2i_checks_its_arguments(t2i):
    with pytest.raises(ValueError, match="one seed per prompt"):
        t2i.generate(["a", "b"], seeds=[1])
    with pytest.raises(TypeError, match="list of strings"):
        t2i.generate("a dog", seeds=[1])
    with pytest.raises(ValueError, match="at least 1"):
        t2i.generate(["a dog"], seeds=[1], n_per_prompt=0)


def test_lora_adapter_changes_the_images_and_replaces_not_stacks(sd_folder, lora_folder):
    from pasta.backends.hub_t2i import HubTextToImage

    model = HubTextToImage(str(sd_folder), num_inference_steps=2, height=32, width=32)
    base = model.generate(["a red cat"], seeds=[5], n_per_prompt=1)[0][0]
    model.load_adapter(str(lora_folder))
    assert model.adapter == str(lora_folder)
    aligned = model.generate(["a red cat"], seeds=[5], n_per_prompt=1)[0][0]
    assert np.abs(pixels(aligned) - pixels(base)).mean() > 1.0
    model.load_adapter(lora_folder)  # loading again replaces the adapter: same images, not a doubled effect
    assert np.array_equal(pixels(model.generate(["a red cat"], seeds=[5], n_per_prompt=1)[0][0]), pixels(aligned))
    again = HubTextToImage(str(sd_folder), num_inference_steps=2, height=32, width=32, adapter=lora_folder)
    assert np.array_equal(pixels(again.generate(["a red cat"], seeds=[5], n_per_prompt=1)[0][0]), pixels(aligned))


def test_load_adapter_rejects_folders_that_are_not_adapters(t2i, sd_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a LoRA adapter folder"):
        t2i.load_adapter(str(sd_folder))
    with pytest.raises(FileNotFoundError, match="not a LoRA adapter folder"):
        t2i.load_adapter(str(tmp_path / "missing"))
    assert t2i.adapter is None


def test_adapter_for_another_model_is_an_error_and_leaves_the_base_model(sd_folder, tmp_path):
    from pasta.backends.hub_t2i import HubTextToImage

    save_lora(tiny_unet(cross_attention_dim=16), tmp_path / "other", targets=["to_k"])
    model = HubTextToImage(str(sd_folder), num_inference_steps=2, height=32, width=32)
    base = model.generate(["a dog"], seeds=[1], n_per_prompt=1)[0][0]
    with pytest.raises(ValueError, match="does not fit the model"):
        model.load_adapter(tmp_path / "other")
    assert model.adapter is None
    assert np.array_equal(pixels(model.generate(["a dog"], seeds=[1], n_per_prompt=1)[0][0]), pixels(base))


@pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks` argument is deprecated")  # inside diffusers
def test_unknown_model_offline_gives_a_clear_error(monkeypatch):
    from pasta.backends.hub_t2i import HubTextToImage

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="not available offline.*HF_HUB_OFFLINE.*save_pretrained") as info:
        HubTextToImage("pasta-tests/no-such-model")
    assert "pasta-tests/no-such-model" in str(info.value)


def test_broken_local_folder_names_the_folder(tmp_path):
    from pasta.backends.hub_t2i import HubTextToImage

    with pytest.raises(OSError, match=f"from the folder {tmp_path}"):
        HubTextToImage(str(tmp_path))


# ---------------------------------------------------------------------------------------------------------------
# image-text embedder


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=tiny_clip_text_config().to_dict(),
        vision_config=dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=16,
    )
    folder = tmp_path_factory.mktemp("tiny-clip")
    CLIPModel(config).save_pretrained(folder)
    images = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tiny_clip_tokenizer()).save_pretrained(folder)
    return folder


def random_images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)) for _ in range(n - 1)]
    return images + [Image.new("L", (20, 20), 128)]  # grey and small: converted and resized


def test_hub_embedder_gives_unit_norm_float32_in_one_space(clip_folder):
    from pasta.backends.hub_embedder import HubEmbedder

    embedder = HubEmbedder(str(clip_folder), device="cpu", batch_size=2)
    assert isinstance(embedder, Embedder) and embedder.dim == 16
    assert_known_clip_encoding(embedder.processor.tokenizer)
    texts = embedder.text(["a red cat", "dog", "a much longer prompt with many words in it"])
    images = embedder.image(random_images(3))
    for array in (texts, images):
        assert array.dtype == np.float32 and array.shape == (3, embedder.dim)
        np.testing.assert_allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-5)
    assert (texts @ images.T).shape == (3, 3)
    assert embedder.text([]).shape == (0, 16) and embedder.image([]).shape == (0, 16)


def test_hub_embedder_is_deterministic(clip_folder):
    from pasta.backends.hub_embedder import HubEmbedder

    embedder = HubEmbedder(str(clip_folder))
    texts = ["a red cat", "a dog"]
    np.testing.assert_array_equal(embedder.text(texts), embedder.text(texts))
    np.testing.assert_allclose(embedder.text(texts[1:]), embedder.text(texts)[1:], atol=1e-5)  # batch-independent
    images = random_images(2)
    np.testing.assert_array_equal(embedder.image(images), embedder.image(images))
    with pytest.raises(TypeError):
        embedder.text("a dog")


# ---------------------------------------------------------------------------------------------------------------
# chat model (transformers)

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)
WORDS = 'a red blue dress cat dog in the rain at sunset watercolor painting sketch give styles for : " | , .'.split()


@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory):
    """A tiny Llama with a word-level tokenizer built in memory, a chat template and no pad token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    roles = ["<|system|>", "<|user|>", "<|assistant|>"]
    vocab = {token: i for i, token in enumerate(["<unk>", "<s>", "</s>", *roles, *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=roles,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(vocab),
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # logit 0 for control tokens, so a random model still says some words
        model.lm_head.weight[: 3 + len(roles)] = 0.0
    folder = tmp_path_factory.mktemp("tiny-lm")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


STYLE = [{"role": "system", "content": "give styles"}, {"role": "user", "content": "a red dress"}]
LONG = [{"role": "user", "content": "a blue cat in the rain at sunset , watercolor painting"}]


def test_transformers_chat_model_batches_with_padding(lm_folder):
    from pasta.backends.hub_lmm import ChatModel, TransformersChatModel

    chat = TransformersChatModel(str(lm_folder), device="cpu", temperature=0.0)  # greedy: reproducible
    assert isinstance(chat, ChatModel)
    assert chat.tokenizer.pad_token == "</s>"
    replies = chat.complete_batch([STYLE, LONG], max_new_tokens=6)
    assert len(replies) == 2 and all(isinstance(r, str) and r for r in replies)
    for reply in replies:
        assert "<|assistant|>" not in reply and "</s>" not in reply  # only the new text, decoded
        assert len(chat.tokenizer(reply, add_special_tokens=False).input_ids) <= 6
    # The short conversation is padded in the batch: its reply must not change because of that.
    assert chat.complete_batch([STYLE], 6) == replies[:1] and chat.complete_batch([LONG], 6) == replies[1:]
    assert chat.complete_batch([], 6) == []


def test_transformers_chat_model_encodes_each_opening_once_without_changing_replies(lm_folder):
    """Openings (every message but the last) are cached; the replies equal those of each conversation encoded whole,
    alone, with no cache and no padding."""
    from pasta.backends.hub_lmm import TransformersChatModel

    chat = TransformersChatModel(str(lm_folder), temperature=0.0)
    tokenizer = chat.tokenizer
    follow_up = [*STYLE, {"role": "assistant", "content": "oil painting"}, {"role": "user", "content": "a cat"}]
    conversations = [STYLE, LONG, STYLE[:1] + LONG, follow_up, STYLE]

    def alone(messages) -> str:
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.inference_mode():
            output = chat.model.generate(
                **inputs, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()

    expected = [alone(c) for c in conversations]
    assert chat.complete_batch(conversations, 6) == expected
    assert len(chat._openings) == 2  # STYLE's system message (shared by three) and follow_up's first three messages
    assert chat.complete_batch(conversations[::-1], 6) == expected[::-1]  # reused, in any order
    assert len(chat._openings) == 2


def test_transformers_chat_model_samples_n_replies_within_max_new_tokens(lm_folder):
    from pasta.backends.hub_lmm import TransformersChatModel

    chat = TransformersChatModel(str(lm_folder))
    replies = chat.complete(STYLE, max_new_tokens=3, n=3)
    assert len(replies) == 3
    assert all(len(chat.tokenizer(r, add_special_tokens=False).input_ids) <= 3 for r in replies)
    with pytest.raises(ValueError, match="max_new_tokens"):
        chat.complete(STYLE, max_new_tokens=0)


def test_int8_chat_model_quantizes_all_linear_layers_but_the_mlp_outputs_and_still_batches(lm_folder):
    """int8 on a CPU: every linear layer but the MLPs' output projections is a dynamically quantized one; greedy
    replies stay within max_new_tokens and do not depend on the batch's padding; a bad value names the setting."""
    from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

    from pasta.backends.hub_lmm import TransformersChatModel

    chat = TransformersChatModel(str(lm_folder), temperature=0.0, quantize="int8")
    assert chat.quantized
    layers = {name: type(m) for name, m in chat.model.named_modules() if isinstance(m, (torch.nn.Linear, Int8Linear))}
    assert layers and all((cls is torch.nn.Linear) == name.endswith("down_proj") for name, cls in layers.items())
    replies = chat.complete_batch([STYLE, LONG], 6)
    assert len(replies) == 2 and all(len(chat.tokenizer(r, add_special_tokens=False).input_ids) <= 6 for r in replies)
    assert chat.complete_batch([LONG], 6) == replies[1:]
    assert not TransformersChatModel(str(lm_folder), quantize="none").quantized
    with pytest.raises(ValueError, match="quantize"):
        TransformersChatModel(str(lm_folder), quantize="int4")


def test_int8_falls_back_to_float_where_torch_has_no_dynamic_quantization(lm_folder, monkeypatch, caplog):
    import sys

    from pasta.backends.hub_lmm import TransformersChatModel

    monkeypatch.setitem(sys.modules, "torch.ao.quantization", None)  # importing it now raises ImportError
    with caplog.at_level("WARNING"):
        chat = TransformersChatModel(str(lm_folder), temperature=0.0, quantize="int8")
    assert not chat.quantized and "runs in float" in caplog.text
    assert all(type(m) is torch.nn.Linear for m in chat.model.modules() if "Linear" in type(m).__name__)
    assert chat.complete_batch([STYLE], 4)


def test_lmm_quantize_setting_is_checked_and_read_from_the_environment():
    from pasta.config import Settings, SettingsError

    assert Settings().lmm_quantize == "int8"
    assert Settings.from_env({"PASTA_LMM_QUANTIZE": "none"}).lmm_quantize == "none"
    with pytest.raises(SettingsError, match="lmm_quantize"):
        Settings(lmm_quantize="int4")


def test_transformers_chat_model_needs_a_chat_template(lm_folder, tmp_path):
    from pasta.backends.hub_lmm import TransformersChatModel

    folder = shutil.copytree(lm_folder, tmp_path / "no-template")
    (folder / "chat_template.jinja").unlink()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="no chat template"):
        TransformersChatModel(str(folder))


# ---------------------------------------------------------------------------------------------------------------
# chat model (OpenAI-compatible endpoint), against a fake server on 127.0.0.1


class FakeEndpoint(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions as `server.mode` says and records every request."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        mode = self.server.mode
        if mode == "slow":
            time.sleep(1.5)
        if mode == "error":
            return self._send(500, b'{"error": "model exploded"}')
        if mode == "bad-json":
            return self._send(200, b"<html>not json")
        n = 1 if mode == "ignores-n" else body.get("n", 1)
        last = body["messages"][-1]["content"]
        choices = [{"index": i, "message": {"role": "assistant", "content": f"{last} #{i}"}} for i in range(n)]
        self._send(200, json.dumps({"choices": choices}).encode())

    def _send(self, status: int, payload: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def log_message(self, *args) -> None:  # keep test output quiet
        pass


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEndpoint)
    server.mode, server.requests = "ok", []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_chat_model_sends_the_request_and_parses_n_choices(endpoint):
    from pasta.backends.hub_lmm import ChatModel, OpenAIChatModel

    server, url = endpoint
    chat = OpenAIChatModel(url + "/", "tiny-model", timeout=5)
    assert isinstance(chat, ChatModel)
    assert chat.complete(STYLE, max_new_tokens=12, n=3) == ["a red dress #0", "a red dress #1", "a red dress #2"]
    request = server.requests[-1]
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["model"] == "tiny-model" and request["body"]["messages"] == STYLE
    assert request["body"]["max_tokens"] == 12 and request["body"]["n"] == 3
    assert "Authorization" not in request["headers"]


def test_openai_chat_model_sends_the_key_but_never_shows_it(endpoint):
    from pasta.backends.hub_lmm import OpenAIChatModel

    server, url = endpoint
    chat = OpenAIChatModel(url, "tiny-model", api_key="sk-secret-123", timeout=5)
    chat.complete(LONG, max_new_tokens=4)
    assert server.requests[-1]["headers"]["Authorization"] == "Bearer sk-secret-123"
    assert "sk-secret-123" not in repr(chat)


def test_openai_chat_model_batch_keeps_order_and_tops_up_ignored_n(endpoint):
    from pasta.backends.hub_lmm import OpenAIChatModel

    server, url = endpoint
    chat = OpenAIChatModel(url, "tiny-model", timeout=5)
    conversations = [[{"role": "user", "content": f"prompt {i}"}] for i in range(5)]
    assert chat.complete_batch(conversations, max_new_tokens=8) == [f"prompt {i} #0" for i in range(5)]
    server.mode, server.requests = "ignores-n", []
    assert len(chat.complete(LONG, max_new_tokens=4, n=3)) == 3 and len(server.requests) == 3


@pytest.mark.parametrize(("mode", "message"), [("error", "HTTP 500: .*model exploded"), ("bad-json", "unreadable")])
def test_openai_chat_model_raises_lmm_error_on_bad_answers(endpoint, mode, message):
    from pasta.backends.hub_lmm import LMMError, OpenAIChatModel

    server, url = endpoint
    server.mode = mode
    with pytest.raises(LMMError, match=message):
        OpenAIChatModel(url, "tiny-model", timeout=5).complete(LONG, max_new_tokens=4)


def test_openai_chat_model_raises_lmm_error_on_timeout_and_refused_connection(endpoint):
    from pasta.backends.hub_lmm import LMMError, OpenAIChatModel

    server, url = endpoint
    server.mode = "slow"
    start = time.perf_counter()
    with pytest.raises(LMMError, match="did not answer within"):
        OpenAIChatModel(url, "tiny-model", timeout=0.3).complete(LONG, max_new_tokens=4)
    assert time.perf_counter() - start < 1.4
    with socket.socket() as probe:  # a port on 127.0.0.1 that nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(LMMError, match="could not reach"):
        OpenAIChatModel(f"http://127.0.0.1:{closed}/v1", "tiny-model", timeout=2).complete(LONG, max_new_tokens=4)
