"""The numeric limits of the input contract, shared by the per-event validator
(:mod:`schemas.parsing`, which re-exports them) and the column-batch fast path
(:mod:`schemas.columns`).

>>> MAX_ID_LENGTH, MAX_FEATURES
(256, 1000)
"""

from __future__ import annotations

__all__ = ["MAX_FEATURES", "MAX_ID_LENGTH", "MAX_RANKED_ITEMS", "MAX_TIMESTAMP"]

#: Longest accepted ``prediction_id`` / ``model_id`` / ``model_version`` / feature name.
MAX_ID_LENGTH = 256
#: Most features one prediction may carry (bounds per-event work and detector state).
MAX_FEATURES = 1000
#: Most items a ranked prediction, or a ranking label, may hold (bounds per-query work).
MAX_RANKED_ITEMS = 1000
#: Exclusive upper bound of event time: 10000-01-01T00:00:00Z, the end of RFC 3339's range.
MAX_TIMESTAMP = 253402300800.0
