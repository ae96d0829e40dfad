"""Prices as the stores give them, turned into one form: a decimal string in major units ("4.99") and the
upper-case ISO 4217 code, for purchase events and the ops views."""

from __future__ import annotations

from decimal import Decimal

# ISO 4217 currencies without minor units, and with three decimals, as Stripe counts them
ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND",
                          "VUV", "XAF", "XOF", "XPF"})
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def _code(currency) -> str | None:
    return (
        currency.upper() if isinstance(currency, str) and len(currency) == 3 and currency.isalpha() else None
    )


def exponent_of(code: str) -> int:
    """How many decimals a currency's minor unit has (an upper-case ISO 4217 code)."""
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


def from_minor(amount, currency) -> tuple[str | None, str | None]:
    """Stripe's integer minor units (cents; yen as they are) -> ("4.99", "USD"); (None, None) if unknown."""
    code = _code(currency)
    if code is None or not isinstance(amount, int) or isinstance(amount, bool):
        return None, None
    return str(Decimal(amount).scaleb(-exponent_of(code))), code


def from_milli(amount, currency) -> tuple[str | None, str | None]:
    """The App Store's milli-units (4990 = 4.99) -> ("4.99", "USD"); (None, None) if unknown."""
    code = _code(currency)
    if code is None or not isinstance(amount, int) or isinstance(amount, bool):
        return None, None
    price = Decimal(amount).scaleb(-3)
    cents = price.quantize(Decimal("0.01"))
    return str(cents if cents == price else price.normalize()), code


def price_fields(price_and_currency: tuple[str | None, str | None]) -> dict:
    """``{"price": ..., "currency": ...}``, to pass to ``Purchase(...)``."""
    return dict(zip(("price", "currency"), price_and_currency))
