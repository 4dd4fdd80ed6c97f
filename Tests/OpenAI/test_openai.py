"""The gateway of a live `pangalactic serve --nodes 3` (SmolLM2-135M), driven by the real
openai-python client and by raw HTTP: what shared/docs/openai-conformance.md asks, point by point.
Run it with scripts/test-openai, which starts the cluster and sets PANGALACTIC_URL."""

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest

URL = os.environ["PANGALACTIC_URL"]  # http://127.0.0.1:PORT/v1
BASE = URL.rsplit("/v1", 1)[0]
client = openai.OpenAI(base_url=URL, api_key="unused", max_retries=0, timeout=300)
MODEL = client.models.list().data[0].id


def chat(content, **kw):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}], **kw)


def streamed_chat(content, **kw):
    chunks = list(chat(content, stream=True, **kw))
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks


def post(path, body, content_type="application/json"):
    data = body if isinstance(body, bytes) else body.encode()
    request = urllib.request.Request(BASE + path, data=data, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metrics():
    with urllib.request.urlopen(BASE + "/metrics", timeout=30) as r:
        return r.read().decode()


def node_figures(name):
    """{node name: value} of a per-node gauge from /metrics."""
    out = {}
    for line in metrics().splitlines():
        m = re.match(name + r'\{(.*)\} (\S+)$', line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            out[labels["node"]] = float(m.group(2))
    return out


def wait_for(what, condition, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def test_models_lists_the_served_model():
    models = client.models.list()
    assert models.object == "list"
    assert [m.object for m in models.data] == ["model"]
    assert models.data[0].owned_by and models.data[0].created > 0


def test_chat_streams_the_same_text_it_returns_whole_at_temperature_zero():
    whole = chat("What is the tallest mountain on Earth?", max_tokens=40, temperature=0)
    text = whole.choices[0].message.content
    assert text and whole.choices[0].message.role == "assistant"
    assert whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    streamed, chunks = streamed_chat("What is the tallest mountain on Earth?", max_tokens=40, temperature=0)
    assert streamed == text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]


def test_include_usage_adds_one_last_chunk_with_the_totals():
    chunks = list(chat("Name three colors.", max_tokens=12, temperature=0, stream=True, stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert last.usage.completion_tokens == 12
    assert all(c.usage is None for c in chunks[:-1])


def test_text_completions_with_a_string_or_token_ids():
    whole = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=12, temperature=0)
    assert whole.object == "text_completion" and whole.choices[0].text
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=12, temperature=0, stream=True) if c.choices)
    assert streamed == whole.choices[0].text
    with_logprobs = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4, temperature=0, logprobs=2)
    assert len(with_logprobs.choices[0].logprobs.tokens) == 4
    assert all(len(t) == 2 for t in with_logprobs.choices[0].logprobs.top_logprobs)


def test_stop_strings_that_span_tokens_are_trimmed():
    prompt = "Write a sentence about the ocean."
    full = client.completions.create(model=MODEL, prompt=prompt, max_tokens=40, temperature=0, logprobs=0)
    text = full.choices[0].text
    tokens = full.choices[0].logprobs.tokens
    # A stop string from the end of one token through the start of the token after next.
    for k in range(len(tokens) - 2):
        a, b, c = tokens[k], tokens[k + 1], tokens[k + 2]
        if len(a) >= 2 and b and c:
            stop = a[-2:] + b + c[:1]
            offset = sum(len(t) for t in tokens[:k]) + len(a) - 2
            if text.find(stop) == offset:
                break
    else:
        pytest.skip("no stop string spanning three tokens in this continuation")
    cut = client.completions.create(model=MODEL, prompt=prompt, max_tokens=40, temperature=0, stop=[stop, "no such text"])
    assert cut.choices[0].text == text[:offset]
    assert cut.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt=prompt, max_tokens=40, temperature=0, stop=stop, stream=True) if c.choices)
    assert streamed == text[:offset]


def test_multibyte_utf8_in_and_out_streams_whole_characters():
    prompt = "Répète exactement: «crème brûlée, café, 東京, naïve» trois fois."
    whole = chat(prompt, max_tokens=60, temperature=0).choices[0].message.content
    streamed, chunks = streamed_chat(prompt, max_tokens=60, temperature=0)
    assert streamed == whole
    assert "\ufffd" not in streamed
    assert any(ord(ch) > 127 for ch in whole), whole
    for c in chunks:
        if c.choices and c.choices[0].delta.content:
            c.choices[0].delta.content.encode("utf-8")  # every piece is whole characters


def test_a_seed_repeats_the_same_text_above_temperature_zero():
    a = chat("Tell me a short story about a cat.", max_tokens=30, temperature=0.8, seed=42).choices[0].message.content
    b = chat("Tell me a short story about a cat.", max_tokens=30, temperature=0.8, seed=42).choices[0].message.content
    assert a == b


def test_n_gives_distinct_choices_with_their_own_index_and_finish():
    r = chat("Give me a name for a dog.", max_tokens=16, temperature=1.0, seed=7, n=2)
    assert sorted(c.index for c in r.choices) == [0, 1]
    assert all(c.finish_reason in ("stop", "length") for c in r.choices)
    assert r.choices[0].message.content != r.choices[1].message.content


def test_logprobs_with_top_logprobs():
    r = chat("What is 2 + 2?", max_tokens=6, temperature=0, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) >= 1
    for entry in content:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 3
        # Greedy: the sampled token is the most likely one.
        assert entry.top_logprobs[0].token == entry.token


def test_sixteen_concurrent_streams_each_get_their_own_text():
    prompts = [f"Write one sentence about the number {i}." for i in range(16)]
    alone = [chat(p, max_tokens=24, temperature=0).choices[0].message.content for p in prompts]
    results = [None] * 16

    def run(i):
        results[i] = streamed_chat(prompts[i], max_tokens=24, temperature=0)[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert results == alone


def test_a_client_that_disconnects_frees_every_node():
    stream = chat("Write a very long essay about the history of mathematics.", max_tokens=800, temperature=0, stream=True)
    received = 0
    for chunk in stream:
        received += 1
        if received == 5:
            break
    stream.close()
    wait_for("every node to free its sequences",
             lambda: sum(node_figures("pangalactic_node_active_sequences").values()) == 0
             and sum(node_figures("pangalactic_node_waiting_sequences").values()) == 0, seconds=30)


def test_killing_a_middle_node_mid_stream_loses_nothing():
    prompts = ["Describe a forest.", "Describe a city.", "Describe a river.", "Describe a desert."]
    settings = [dict(temperature=0), dict(temperature=0.8, seed=11), dict(temperature=0), dict(temperature=0.8, seed=12)]
    expected = [streamed_chat(p, max_tokens=60, **s)[0] for p, s in zip(prompts, settings)]

    layers = {name: first for name, first in node_figures("pangalactic_node_first_layer").items() if first >= 0}
    middle = sorted(layers, key=layers.get)[1]
    results = [None] * 4
    started = threading.Event()

    def run(i):
        pieces = []
        for chunk in chat(prompts[i], max_tokens=60, stream=True, **settings[i]):
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
                if len(pieces) == 5:
                    started.set()
        results[i] = "".join(pieces)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    assert started.wait(120)
    pids = subprocess.run(["pgrep", "-f", f"node --join .* --name {middle} "], capture_output=True, text=True).stdout.split()
    assert pids, f"no process for {middle}"
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    for t in threads:
        t.join(timeout=300)
    assert results == expected


BAD_CHAT = [
    {"model": MODEL},
    {"model": MODEL, "messages": None},
    {"model": MODEL, "messages": "hello"},
    {"model": MODEL, "messages": [123]},
    {"model": MODEL, "messages": [{}]},
    {"model": MODEL, "messages": [{"role": 3, "content": "hi"}]},
    {"model": MODEL, "messages": [{"role": "wizard", "content": "hi"}]},
    {"model": MODEL, "messages": [{"role": "user", "content": 42}]},
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0},
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": -5},
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**9},
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "temperature": -0.5},
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "temperature": 1e300},
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "top_p": 1.5},
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "top_p": -0.1},
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "top_k": -1},
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "n": 0},
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "logprobs": True, "top_logprobs": 21},
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]},
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stop": [1, 2]},
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": True}},
    {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]},
]

BAD_COMPLETIONS = [
    {"model": MODEL, "prompt": ""},
    {"model": MODEL, "prompt": [10**8]},
    {"model": MODEL, "prompt": "hi", "logprobs": 21},
    {"model": MODEL, "prompt": "x" * 20000},
]


@pytest.mark.parametrize("body", BAD_CHAT)
def test_bad_chat_requests_get_a_4xx(body):
    status, text = post("/v1/chat/completions", json.dumps(body))
    assert 400 <= status < 500, (status, text)
    error = json.loads(text)["error"]
    assert set(error) >= {"message", "type", "param", "code"}


@pytest.mark.parametrize("body", BAD_COMPLETIONS)
def test_bad_completion_requests_get_a_4xx(body):
    status, text = post("/v1/completions", json.dumps(body))
    assert 400 <= status < 500, (status, text)


def test_malformed_bodies_get_a_4xx_and_the_server_still_serves():
    assert 400 <= post("/v1/chat/completions", "{not json")[0] < 500
    assert 400 <= post("/v1/chat/completions", json.dumps({"model": MODEL, "messages": []}), content_type="text/plain")[0] < 500
    assert post("/v1/completions", b"{" + b" " * (5 << 20) + b"}")[0] == 413
    # A NUL inside a JSON string is valid text: served or refused, never a crash.
    assert post("/v1/completions", json.dumps({"model": MODEL, "prompt": "hi\u0000there", "max_tokens": 1}))[0] in (200, 400)
    with pytest.raises(openai.BadRequestError):
        chat("hi", max_tokens=0)
    # Still serving.
    assert chat("Say hello.", max_tokens=4, temperature=0).choices[0].message.content


def test_raw_sse_bytes_with_curl():
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Count to three."}],
                       "max_tokens": 10, "temperature": 0, "stream": True})
    out = subprocess.run(["curl", "-sN", "-i", BASE + "/v1/chat/completions", "-H", "Content-Type: application/json", "-d", body],
                         capture_output=True, timeout=120).stdout.decode()
    head, _, stream = out.replace("\r\n", "\n").partition("\n\n")
    assert "content-type: text/event-stream" in head.lower()
    assert stream.endswith("data: [DONE]\n\n")
    events = [e for e in stream.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    for event in events[:-1]:
        for line in event.split("\n"):
            assert line.startswith("data: ") or line.startswith(":"), line
            if line.startswith("data: "):
                chunk = json.loads(line[6:])
                assert chunk["object"] == "chat.completion.chunk"
