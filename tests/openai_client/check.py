"""The official `openai` Python client against a running `oprl serve`.

Usage: check.py BASE_URL MODEL REFERENCE_JSON

Chat (greedy text and per-token log-probs against transformers' reference within 2e-3),
streaming (chunks concatenate to the plain reply, usage last), n > 1, /v1/completions plain and
streamed with log-probs, /v1/models, and the client's typed errors (404 unknown model, 422 out
of range). Exits non-zero at the first mismatch.
"""

import json
import sys

import openai

TOLERANCE = 2e-3


def close(got, want, what):
    assert abs(got - want) <= TOLERANCE, f"{what}: {got} vs {want}"


def main():
    base_url, model, reference = sys.argv[1:4]
    with open(reference) as f:
        case = json.load(f)["cases"][0]
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)

    assert [m.id for m in client.models.list()] == [model]

    reply = client.chat.completions.create(
        model=model,
        messages=case["messages"],
        temperature=0,
        max_tokens=32,
        logprobs=True,
        top_logprobs=5,
    )
    choice = reply.choices[0]
    assert choice.message.content == case["greedy_text"], choice.message.content
    assert choice.finish_reason == "stop"
    tokens = choice.logprobs.content
    assert len(tokens) == len(case["greedy_logprobs"])
    for i, (t, want) in enumerate(zip(tokens, case["greedy_logprobs"])):
        close(t.logprob, want, f"chat token {i}")
        assert len(t.top_logprobs) == 5
    for got, (_, want) in zip(tokens[0].top_logprobs, case["first_top5"]):
        close(got.logprob, want, "first token alternative")
    assert reply.usage.completion_tokens == len(case["greedy_ids"])

    stream = client.chat.completions.create(
        model=model,
        messages=case["messages"],
        temperature=0,
        max_tokens=32,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == case["greedy_text"], text
    assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens

    several = client.chat.completions.create(
        model=model, messages=case["messages"], temperature=0, max_tokens=32, n=2
    )
    assert [c.message.content for c in several.choices] == [case["greedy_text"]] * 2

    completion = client.completions.create(
        model=model, prompt=case["rendered"], temperature=0, max_tokens=32, logprobs=3
    )
    assert completion.choices[0].text == case["greedy_text"], completion.choices[0].text
    for got, want in zip(completion.choices[0].logprobs.token_logprobs, case["greedy_logprobs"]):
        close(got, want, "completion token")
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model=model, prompt=case["rendered"], temperature=0, max_tokens=32, stream=True
        )
    )
    assert streamed == case["greedy_text"], streamed

    try:
        client.chat.completions.create(model="no-such-model", messages=case["messages"])
        raise AssertionError("an unknown model was accepted")
    except openai.NotFoundError:
        pass
    try:
        client.chat.completions.create(model=model, messages=case["messages"], temperature=7)
        raise AssertionError("temperature 7 was accepted")
    except openai.UnprocessableEntityError:
        pass
    print("ok")


if __name__ == "__main__":
    main()
