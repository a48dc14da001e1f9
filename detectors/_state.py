"""JSON-friendly encoding of floats for detector state.

JSON has no NaN or infinity; state dicts must survive ``orjson.dumps``/``orjson.loads``
unchanged, so NaN is written as ``None`` and the infinities as the strings ``"inf"``/``"-inf"``.
"""

from __future__ import annotations

import math

__all__ = ["decode_float", "encode_float"]


def encode_float(value: float) -> float | str | None:
    """Encode one float so that JSON can carry it.

    >>> [encode_float(v) for v in (1.5, float("nan"), float("inf"), -float("inf"))]
    [1.5, None, 'inf', '-inf']
    """
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def decode_float(value: float | str | None) -> float:
    """Invert :func:`encode_float`.

    >>> [decode_float(v) for v in (1.5, None, "inf", "-inf")]
    [1.5, nan, inf, -inf]
    """
    if value is None:
        return math.nan
    return float(value)
