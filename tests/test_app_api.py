"""A real Gradio server in this process, driven through its named endpoints with gradio_client."""

import socket

import pytest
from gradio_client import Client

from pasta.agent import Agent
from pasta.config import Settings
from pasta.ui import build_demo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def client(embedded_t2i, retrieval):
    settings = Settings.from_env({}, turns=2, generator="retrieval")
    demo = build_demo(settings, agent=Agent(settings, None, embedded_t2i, retrieval))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    demo.close()


def test_start_then_pick_through_the_api(client):
    out = client.predict("a green coat", api_name="/start")
    status, columns = out[0], out[1:]
    assert "Turn 1 of 2" in status
    captions, galleries = columns[0::2], columns[1::2]
    assert len(captions) == 4 and all(len(g) == 4 for g in galleries)
    assert all(c.startswith("**") for c in captions)
    out = client.predict(2, api_name="/pick")
    assert "Turn 2 of 2" in out[0]
    out = client.predict(1, api_name="/pick")
    assert "finished" in out[0]


def test_empty_prompt_is_a_clear_error(client):
    with pytest.raises(Exception, match="the prompt is empty"):
        client.predict("   ", api_name="/start")
