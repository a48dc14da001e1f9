"""The one orjson wrapper of driftstream.

Every byte that goes to or comes from Kafka passes through :func:`dumps` / :func:`loads`, so
the options (numpy arrays and scalars serialised natively, non-string dict keys allowed) are
the same everywhere.

>>> import numpy as np
>>> dumps({"a": np.float64(0.5), 1: [True, None]})
b'{"a":0.5,"1":[true,null]}'
>>> loads(b'{"a":0.5}')
{'a': 0.5}

``loads`` raises ``orjson.JSONDecodeError`` (a ``ValueError``) on invalid JSON, including
``NaN``/``Infinity`` literals and numbers that overflow a double such as ``1e400``.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["dumps", "loads", "register_faust_codec", "DUMPS_OPTIONS"]

#: The orjson options every driftstream producer uses.
DUMPS_OPTIONS: int = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

_orjson_dumps = orjson.dumps

#: Decode JSON bytes (or str, bytearray, memoryview) to Python objects.
loads = orjson.loads


def dumps(obj: Any) -> bytes:
    """Encode ``obj`` as compact UTF-8 JSON bytes (numpy and dataclasses supported)."""
    return _orjson_dumps(obj, option=DUMPS_OPTIONS)


_codec_instance: Any = None


def register_faust_codec() -> Any:
    """Register the ``"orjson"`` codec with faust and return it (idempotent).

    Afterwards ``faust.Topic(..., value_serializer="orjson")`` and faust models with
    ``serializer="orjson"`` use :func:`dumps`/:func:`loads`. faust is imported only here, so
    the rest of ``schemas`` does not need it.
    """
    global _codec_instance
    from faust.serializers import codecs

    if _codec_instance is None:

        class OrjsonCodec(codecs.Codec):
            """faust codec backed by :func:`schemas.codec.dumps` / :func:`schemas.codec.loads`."""

            def _dumps(self, obj: Any) -> bytes:
                return dumps(obj)

            def _loads(self, s: bytes) -> Any:
                return loads(s)

        _codec_instance = OrjsonCodec()
    codecs.register("orjson", _codec_instance)
    return _codec_instance
