"""Chat-model backends: OpenAI-compatible HTTP (local server), local transformers folder, deterministic."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from agents.config import LLMConfig
from agents.llm import ContextAnsweringChat, OpenAICompatChat, TransformersChat, make_chat_model, respell
from fedsim.errors import ConfigError, DataPathError


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, self.headers.get("Authorization"), body))
        if body["model"] == "broken":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"boom")
            return
        text = f"{body['messages'][0]['role']}|{body['messages'][-1]['content'].upper()}|{body['max_tokens']}"
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def test_openai_compatible_backend_against_a_local_server(server):
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    model = make_chat_model(LLMConfig(backend="openai", base_url=url, model="tiny", api_key="k", max_new_tokens=7))
    out = model.invoke([SystemMessage("be brief"), HumanMessage("hello")])
    assert out.text == "system|HELLO|7"
    path, auth, body = server.requests[0]
    assert path == "/v1/chat/completions" and auth == "Bearer k"
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]
    assert body["temperature"] == 0.0
    with pytest.raises(RuntimeError, match="HTTP 500"):
        OpenAICompatChat(base_url=url, model="broken").invoke("x")
    with pytest.raises(ConfigError, match="base_url"):
        make_chat_model(LLMConfig(backend="openai"))


def _tiny_model_dir(path):
    """A random 2-layer Llama and a word-level tokenizer with a chat template, saved like a real folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = [
        "<pad>",
        "<eos>",
        "<unk>",
        "system",
        "user",
        "assistant",
        ":",
        "hello",
        "world",
        "the",
        "answer",
        "is",
    ]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    fast.chat_template = (
        "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}assistant : {% endif %}"
    )
    fast.save_pretrained(path)
    cfg = LlamaConfig(
        vocab_size=len(words),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
    )
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(path)


def test_local_transformers_folder_loads_once_and_generates_greedily(tmp_path):
    _tiny_model_dir(tmp_path)
    chat = TransformersChat(model_path=str(tmp_path), max_new_tokens=3)
    convs = [[SystemMessage("the answer"), HumanMessage("hello world")], [HumanMessage("hello")]]
    single = [chat.invoke(c).text for c in convs]
    batched = [m.text for m in chat.batch(convs)]
    assert batched == single and all(isinstance(t, str) for t in single)
    assert chat.invoke(convs[0]).text == single[0]  # greedy: deterministic
    from agents.llm import load_causal_lm

    assert load_causal_lm.cache_info().currsize >= 1
    with pytest.raises(DataPathError, match="model_path"):
        TransformersChat(model_path=str(tmp_path / "missing")).invoke("x")


def test_context_answering_model():
    ctx = "Role.\n\nUser records:\n- annual_income: 62000. Income.\n- risk_tolerance: very conservative. Risk."
    model = ContextAnsweringChat()
    ask = "Task: risk? Options: (a) conservative (b) aggressive (c) very conservative (d) balanced\nAnswer (a)."
    assert model.invoke([SystemMessage(ctx), HumanMessage(ask)]).text == "Answer: (c) very conservative"
    none = "Task: risk? Options: (a) aggressive (b) balanced"
    assert "(" not in model.invoke([SystemMessage(ctx), HumanMessage(none)]).text
    brief = model.invoke([SystemMessage(ctx), HumanMessage("Task: x\nrespell: words\nWrite a brief for the y agent")])
    assert "sixty-two thousand" in brief.text and "62000" not in brief.text
    probe = model.invoke([SystemMessage(ctx), HumanMessage("What is the user's annual income?")]).text
    assert probe.startswith("annual_income: 62000")
    assert respell("Amelia 62000", "spaced") == "A-m-e-l-i-a 6-2-0-0-0"
    assert respell("62000", "thousands") == "62,000"
