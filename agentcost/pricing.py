"""Cost of a call from its tokens when the client did not send one, from genai-prices' table.

An unknown model gives ``None``, never 0: a zero would make a model look free and flatter its
cost per positive response.

Pricing one call through genai-prices takes about 180 µs and token counts rarely repeat, so a
cache per exact count misses almost always. A model's price is instead read once per (model,
provider) as per-token rates: with flat prices the cost is ``fixed + in * rate_in + out *
rate_out``. Prices are short decimals, so that Decimal arithmetic is exact and equals what
genai-prices computes. Models with tiered prices (the rate depends on the prompt's size) keep the
exact calculation per call.
"""

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import PriceCalculation, TieredPrices


@dataclass(frozen=True, slots=True)
class _Rates:
    provider: str | None  # the provider id that found the model (None: genai-prices chose)
    flat: bool
    fixed: Decimal = Decimal(0)
    per_input: Decimal = Decimal(0)
    per_output: Decimal = Decimal(0)


def warm_up() -> None:
    """Load the price table now (a few hundred ms), not inside the first ingest request."""
    get_snapshot()


def compute_cost(
    model: str, provider: str | None, input_tokens: int, output_tokens: int
) -> float | None:
    rates = _rates(model, provider)
    if rates is None:
        return None
    if not rates.flat:
        return _exact_cost(model, rates.provider, input_tokens, output_tokens)
    return float(rates.fixed + rates.per_input * input_tokens + rates.per_output * output_tokens)


@lru_cache(maxsize=4096)
def _rates(model: str, provider: str | None) -> _Rates | None:
    try:
        base = _price(model, provider, 0, 0)
    except LookupError:
        if provider is None:
            return None
        # A provider name genai-prices spells differently should not hide a known model.
        return _rates(model, None)
    if any(isinstance(price, TieredPrices) for price in vars(base.model_price).values()):
        return _Rates(provider, flat=False)
    fixed = base.total_price
    return _Rates(
        provider,
        flat=True,
        fixed=fixed,
        per_input=_price(model, provider, 1, 0).total_price - fixed,
        per_output=_price(model, provider, 0, 1).total_price - fixed,
    )


@lru_cache(maxsize=4096)
def _exact_cost(
    model: str, provider: str | None, input_tokens: int, output_tokens: int
) -> float | None:
    return float(_price(model, provider, input_tokens, output_tokens).total_price)


def _price(
    model: str, provider: str | None, input_tokens: int, output_tokens: int
) -> PriceCalculation:
    return calc_price(
        Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        model_ref=model,
        provider_id=provider,
    )
