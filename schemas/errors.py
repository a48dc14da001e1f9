"""The errors of the ``schemas`` package.

Every contract violation is a :class:`ContractError` carrying a short, stable ``reason`` code
(one of :data:`REASONS`) and the offending ``field`` (dotted for nested fields, e.g.
``features.age``), so a bad event can become a dead-letter record instead of an exception in
an agent loop.

>>> err = ContractError("out_of_range", "predictions: field 'score' must be a number in [0, 1], got 1.5", "score")
>>> err.reason, err.field, str(err)
('out_of_range', 'score', "predictions: field 'score' must be a number in [0, 1], got 1.5")
>>> isinstance(err, ValueError)
True
"""

from __future__ import annotations

#: Every reason code a dead-letter record can carry (all but one name a contract violation).
REASONS: frozenset[str] = frozenset(
    {
        "malformed_json",  # the record is not valid JSON (incl. NaN/Infinity literals, 1e400)
        "not_an_object",  # an event (or a batch element) is not a JSON object
        "missing_field",  # a required field is absent
        "wrong_type",  # a field has the wrong JSON type (bools are never numbers)
        "non_finite",  # a number is NaN or +/-inf (only possible from Python callers)
        "out_of_range",  # a value is outside its allowed range or length
        "invalid_timestamp",  # a timestamp string is not RFC 3339 with an offset
        "oversized",  # the record is larger than the configured byte limit
        "empty_batch",  # the record is an empty JSON array or column batch
        "malformed_batch",  # a column batch of the wrong shape (arrays of different lengths, ...)
        "unknown_model",  # model_id is not one of the configured models
        "too_many_features",  # more features than MAX_FEATURES
        "webhook_failed",  # an alert the webhook sink could not deliver (not a contract violation)
        "clock_skew",  # an event stamped too far ahead of its record's timestamp (streams.pipeline.clock)
        "too_many_models",  # an event of a model past DRIFTSTREAM_MAX_MODELS (streams.pipeline.cardinality)
        "prediction_id_conflict",  # a prediction id another model's prediction holds (streams.pipeline.identity)
        "model_mismatch",  # a label naming another model than its prediction's (streams.pipeline.identity)
        "model_quarantined",  # input of a model whose state or artifact cannot be loaded
        "unsafe_name",  # a model id or version that would leave the model store's folder
    }
)


class ContractError(ValueError):
    """An event does not satisfy its topic's contract.

    ``reason`` is one of :data:`REASONS`; ``field`` names the offending field or is ``None``
    for record-level problems. The message names the field and what was expected.
    """

    __slots__ = ("reason", "field")

    def __init__(self, reason: str, message: str, field: str | None = None) -> None:
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {sorted(REASONS)}, got {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.field = field

    def __reduce__(self):  # keep pickling (multiprocessing, faust) working with the extra args
        return (type(self), (self.reason, str(self), self.field))
