"""Costs from per-(model, provider) rates equal genai-prices' own calculation, call by call."""

import random

import pytest
from genai_prices import Usage, calc_price

from agentcost import pricing


def library(model: str, provider: str | None, input_tokens: int, output_tokens: int) -> float:
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return float(calc_price(usage, model_ref=model, provider_id=provider).total_price)


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4.1-mini", "openai"),  # flat prices: a multiplication
        ("gpt-4.1", None),
        ("gemini-2.5-pro", "google"),  # tiered above 200k input tokens: exact per call
        ("claude-sonnet-4-5", "anthropic"),
    ],
)
def test_rates_give_the_library_price_for_any_token_count(model: str, provider: str | None) -> None:
    rng = random.Random(model)
    counts = [(0, 0), (1, 0), (0, 1), (200_000, 10), (200_001, 10)]
    counts += [(rng.randint(0, 2_000_000), rng.randint(0, 200_000)) for _ in range(50)]
    for input_tokens, output_tokens in counts:
        expected = library(model, provider, input_tokens, output_tokens)
        assert pricing.compute_cost(model, provider, input_tokens, output_tokens) == expected


def test_a_provider_spelled_differently_still_finds_the_model() -> None:
    assert pricing.compute_cost("gpt-4.1", "OpenAI Inc", 1000, 100) == library(
        "gpt-4.1", None, 1000, 100
    )


def test_an_unknown_model_has_no_cost() -> None:
    assert pricing.compute_cost("house-model-without-a-price", "self-hosted", 10, 10) is None
    assert pricing.compute_cost("house-model-without-a-price", None, 10, 10) is None
