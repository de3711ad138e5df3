"""Cost of a call from its tokens when the client did not send one, from genai-prices' table.

An unknown model gives ``None``, never 0: a zero would make a model look free and flatter its
cost per positive response.
"""

from functools import lru_cache

from genai_prices import Usage, calc_price


@lru_cache(maxsize=4096)
def compute_cost(
    model: str, provider: str | None, input_tokens: int, output_tokens: int
) -> float | None:
    try:
        price = calc_price(
            Usage(input_tokens=input_tokens, output_tokens=output_tokens),
            model_ref=model,
            provider_id=provider,
        )
    except LookupError:
        if provider is None:
            return None
        # A provider name genai-prices spells differently should not hide a known model.
        return compute_cost(model, None, input_tokens, output_tokens)
    return float(price.total_price)
