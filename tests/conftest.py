"""Shared fixtures: real components, loaded once per test session; one torch thread so tests stay polite."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(int(os.environ.get("PASTA_TEST_THREADS", "1")))

TEST_SAMPLING_STEPS = 4
"""Sampling steps of the shared embedded diffusion model: the app and agent tests check behaviour (shapes, seeds,
logging, timing of events), not how good the images are (`pasta eval t2i` measures that), and at the weights' 15
steps rendering took most of the suite's time (8 images: 8.6 s at 15 steps, 2.3 s at 4, one thread)."""


def pytest_runtest_setup(item):
    """Tests marked `fashion_mnist` skip, saying why, where the Debian data is missing (or hidden by pointing
    PASTA_FASHION_MNIST_DIR at an empty folder, as CI does once to prove it)."""
    if item.get_closest_marker("fashion_mnist"):
        from pasta.worlds.fashion import fashion_mnist_dir

        if not (fashion_mnist_dir() / "t10k-images-idx3-ubyte.gz").exists():
            pytest.skip(
                f"Fashion-MNIST is not installed at {fashion_mnist_dir()} (apt-get install dataset-fashion-mnist)"
            )
    if item.get_closest_marker("emoji_data"):
        from pasta.worlds.emoji_art import INSTALL, have_emoji_data

        if not have_emoji_data():
            pytest.skip(f"Noto Color Emoji or Unicode's emoji list is not installed ({INSTALL})")


@pytest.fixture(scope="session")
def minilm():
    from pasta.backends.minilm import shared_minilm

    return shared_minilm()


@pytest.fixture(scope="session")
def retrieval(minilm):
    from pasta.candidates.retrieval import RetrievalGenerator

    return RetrievalGenerator(minilm.embed)


@pytest.fixture(scope="session")
def embedded_t2i(minilm):
    from pasta.backends.embedded_t2i import DEFAULT_MODEL_DIR, EmbeddedTextToImage

    if not (DEFAULT_MODEL_DIR / "unet" / "config.json").exists():
        pytest.skip("no shipped embedded weights (models/embedded/t2i)")
    return EmbeddedTextToImage(text=minilm, num_inference_steps=TEST_SAMPLING_STEPS)


@pytest.fixture(scope="session")
def embedded_embedder(minilm):
    from pasta.backends.image_encoder import DEFAULT_IMAGE_ENCODER_DIR, EmbeddedEmbedder

    if not (DEFAULT_IMAGE_ENCODER_DIR / "model.safetensors").exists():
        pytest.skip("no shipped image encoder weights (models/embedded/image_encoder)")
    return EmbeddedEmbedder(text_model=minilm)


@pytest.fixture(scope="session")
def tiny_agent_dir(tmp_path_factory):
    """A small, untrained but real slate agent in the layout the app loads: qnet/ (TwinQ.save) and user_model/
    (UserModel.save), seeded; 3 user types, so tests can tell it from the shipped agent."""
    from pasta.policy.iql import TwinQ
    from pasta.policy.qnet import QNetConfig
    from pasta.policy.user_model import UserModel, UserModelConfig

    folder = tmp_path_factory.mktemp("agent")
    torch.manual_seed(0)
    TwinQ(QNetConfig(n_types=3, hidden=32)).save(folder / "qnet")
    UserModel(2 * 384, UserModelConfig(n_types=3, hidden=16)).save(folder / "user_model")
    return folder


class AppServer:
    """A real Gradio server of the app in this process, on a free port, with its own log store."""

    def __init__(self, demo, url: str, agent, store, settings) -> None:
        self.demo, self.url, self.agent, self.store, self.settings = demo, url, agent, store, settings

    def client(self):
        from gradio_client import Client

        return Client(self.url, verbose=False)

    def close(self) -> None:
        self.demo.close()
        self.store.close()


@pytest.fixture(scope="session")
def start_app(embedded_t2i, retrieval, embedded_embedder, tiny_agent_dir, tmp_path_factory):
    """start_app(log_db=None, **settings) -> AppServer: the app on real components (shipped diffusion weights,
    MiniLM, the image encoder, the retrieval generator, a tiny real Q-agent), its log store a real SQLite file."""
    import socket

    from pasta.agent import Agent
    from pasta.app.recorder import SessionRecorder
    from pasta.app.ui import build_demo, launch
    from pasta.config import Settings
    from pasta.logbook import LogStore
    from pasta.policy.loader import load_policy

    servers = []

    def start(log_db=None, **overrides) -> AppServer:
        log_db = log_db or tmp_path_factory.mktemp("app") / "logs.sqlite"
        settings = Settings.from_env(
            {}, generator="retrieval", agent_dir=str(tiny_agent_dir), log_db=str(log_db), **overrides
        )
        loaded = load_policy(settings, embedded_embedder)
        store = LogStore(settings.log_db)
        agent = Agent(
            settings,
            embedded_embedder,
            embedded_t2i,
            retrieval,
            loaded.policy,
            recorder=SessionRecorder(store, settings.resolved_image_dir()),
        )
        demo = build_demo(settings, agent, [loaded.notice])
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        launch(demo, settings, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        server = AppServer(demo, f"http://127.0.0.1:{port}/", agent, store, settings)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
