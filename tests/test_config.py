import pytest

from pasta.config import Settings, SettingsError


def test_defaults_are_the_paper_sizes():
    s = Settings.from_env({})
    assert (s.n_candidates, s.slate_size, s.images_per_prompt, s.turns) == (25, 4, 4, 5)
    assert s.tier == "auto" and s.generator == "lmm"


def test_auto_tier_is_embedded_without_gpu_or_hub(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert Settings.from_env({}).resolved_tier() == "embedded"


def test_environment_then_flags_take_precedence():
    env = {"PASTA_TIER": "hub", "PASTA_LOG_DB": "/tmp/a.sqlite", "PASTA_TURNS": "7"}
    s = Settings.from_env(env)
    assert (s.tier, s.log_db, s.turns) == ("hub", "/tmp/a.sqlite", 7)
    s = Settings.from_env(env, tier="embedded", log_db=None)
    assert s.tier == "embedded" and s.log_db == "/tmp/a.sqlite"
    assert Settings.from_env({}).render_ahead and not Settings.from_env({"PASTA_RENDER_AHEAD": "off"}).render_ahead


@pytest.mark.parametrize(
    ("env", "overrides", "message"),
    [
        ({"PASTA_TIER": "gpu"}, {}, "tier='gpu' is not allowed: choose one of auto, embedded, hub"),
        ({}, {"generator": "gpt"}, "generator='gpt' is not allowed: choose one of lmm, retrieval"),
        ({"PASTA_TURNS": "five"}, {}, "PASTA_TURNS='five' is not allowed: turns must be a whole number"),
        ({}, {"slate_size": 9}, "slate_size=9 is not allowed: use a whole number from 1 to 5"),
        ({}, {"lmm_endpoint": "localhost:8000"}, "lmm_endpoint='localhost:8000' is not allowed"),
        ({}, {"device": "tpu"}, "device='tpu' is not allowed: choose one of auto, cpu, cuda, mps"),
        ({"PASTA_SESSION_ESTIMATE": "maybe"}, {}, "PASTA_SESSION_ESTIMATE='maybe' is not allowed"),
        ({"PASTA_RENDER_AHEAD": "sometimes"}, {}, "PASTA_RENDER_AHEAD='sometimes' is not allowed"),
    ],
)
def test_invalid_settings_name_the_setting_and_allowed_values(env, overrides, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env, **overrides)


def test_api_key_is_never_printed():
    s = Settings.from_env({"PASTA_LMM_API_KEY": "sk-secret"})
    assert s.lmm_api_key == "sk-secret"
    assert "sk-secret" not in str(s.public())


def test_gradio_server_settings_are_read_where_pasta_ones_are_not_set():
    settings = Settings.from_env({"GRADIO_SERVER_PORT": "7999", "GRADIO_SERVER_NAME": "0.0.0.0"})
    assert settings.port == 7999 and settings.host == "0.0.0.0"
    settings = Settings.from_env({"GRADIO_SERVER_PORT": "7999", "PASTA_PORT": "8100"})
    assert settings.port == 8100
    with pytest.raises(SettingsError, match="GRADIO_SERVER_PORT='x'"):
        Settings.from_env({"GRADIO_SERVER_PORT": "x"})


def test_the_world_setting_picks_the_weights_and_refuses_another_worlds(tmp_path):
    from pasta.backends.embedded_t2i import DEFAULT_MODEL_DIR
    from pasta.components import make_text_to_image

    with pytest.raises(SettingsError, match="world='space' is not allowed"):
        Settings.from_env({"PASTA_WORLD": "space"})
    assert Settings.from_env({"PASTA_WORLD": "emoji"}).world == "emoji"
    settings = Settings(
        tier="embedded", world="emoji", t2i_model_dir=str(DEFAULT_MODEL_DIR), log_db=str(tmp_path / "l")
    )
    with pytest.raises(SettingsError, match="trained on the 'fashion' world"):
        make_text_to_image(settings)


def test_sampling_steps_reach_the_embedded_model_and_bad_values_are_refused():
    from pasta.components import make_text_to_image

    assert make_text_to_image(Settings(tier="embedded", sampling_steps=7)).config.num_inference_steps == 7
    assert make_text_to_image(Settings(tier="embedded", sampling_steps=0)).config.num_inference_steps == 15
    with pytest.raises(SettingsError, match="sampling_steps=-1 is not allowed"):
        Settings(sampling_steps=-1)
    assert Settings.from_env({"PASTA_SAMPLING_STEPS": "12"}).sampling_steps == 12


def test_sampler_setting_reaches_the_embedded_model_and_bad_names_are_refused():
    from diffusers import DPMSolverMultistepScheduler, UniPCMultistepScheduler

    from pasta.backends.embedded_t2i import EmbeddedTextToImage
    from pasta.components import make_text_to_image
    from pasta.config import settings_arguments, settings_from_args

    assert Settings().sampler == "unipc" and Settings().sampling_steps == 6
    assert isinstance(make_text_to_image(Settings(tier="embedded")).scheduler, UniPCMultistepScheduler)
    flags = settings_arguments().parse_args(["--sampler", "dpm-solver++", "--tier", "embedded"])
    model = make_text_to_image(settings_from_args(flags))
    assert isinstance(model.scheduler, DPMSolverMultistepScheduler) and model.sampler == "dpm-solver++"
    assert Settings.from_env({"PASTA_SAMPLER": "dpm-solver++"}).sampler == "dpm-solver++"
    with pytest.raises(SettingsError, match="sampler='ddim' is not allowed: choose one of unipc, dpm-solver\\+\\+"):
        Settings(sampler="ddim")
    with pytest.raises(ValueError, match="sampler must be one of unipc, dpm-solver\\+\\+, got 'euler'"):
        EmbeddedTextToImage(sampler="euler")
