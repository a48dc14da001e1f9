"""Prediction identity: a prediction id belongs to the model whose prediction came first.

The join matches by ``prediction_id`` within a partition. Two models that used the same
ids lost the second model's predictions as silent "duplicates", and a label naming another
model joined anyway. So, before a micro-batch reaches the join (:class:`IdentityScreen`):

- a prediction whose id a prediction of *another* model holds here (pending, joined or
  expired; or earlier in the batch) is dead-lettered as ``prediction_id_conflict``; the
  owner is the first in the predictions partition's log, so replays decide the same;
- a label that names a ``model_id`` other than the one its prediction belongs to is
  dead-lettered as ``model_mismatch`` (a label without ``model_id`` joins by id alone);
  one that came first and waits is refused when its prediction comes
  (:attr:`IdentityScreen.refused_labels`: the join drops it, and the stage dead-letters it
  with no offset, since it was read in an earlier batch). Either way the prediction stands
  and the label joins nothing, whichever arrived first.

>>> from streams.pipeline.join import JoinState
>>> screen = IdentityScreen(JoinState(60.0))
>>> preds = {"prediction_id": ["a", "a", "b"], "model_id": ["m", "n", "m"], "model_version": [None] * 3,
...          "timestamp": [1.0] * 3, "prediction": [1] * 3, "score": [None] * 3, "latency_ms": [None] * 3, "features": {}}
>>> kept, errors = screen.screen_columns(preds, "predictions")
>>> kept["prediction_id"], kept["model_id"], [(e.index, e.reason) for e in errors]
(['a', 'b'], ['m', 'm'], [(1, 'prediction_id_conflict')])
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate, compress
from operator import itemgetter, not_
from typing import Any

from schemas import codec
from schemas.parsing import RecordError

from streams.pipeline.clock import drop_rows
from streams.pipeline.join import JoinState

PREDICTION_ID_CONFLICT = "prediction_id_conflict"
_FIRST = itemgetter(0)
MODEL_MISMATCH = "model_mismatch"


class IdentityScreen:
    """One micro-batch's identity checks against a partition's join state; screen the
    batch's prediction records first (in log order), then its labels."""

    def __init__(self, state: JoinState) -> None:
        self.state = state
        #: the batch's predictions so far: id -> model
        self.claims: dict[str, str] = {}
        #: pending labels (id -> their entry: label, model, event time, delta seq) naming
        #: another model than the prediction that came for them
        self.refused_labels: dict[str, Any] = {}

    def _owners(self, ids: Iterable[str]) -> dict[str, str | None]:
        ids = list(ids)
        owners = self.state.owners(ids)
        owners.update((pid, self.claims[pid]) for pid in filter(self.claims.__contains__, ids))
        return owners

    def _owner_models(self, ids: Sequence[str]) -> set[Any]:
        """The models that own any of ``ids`` (C-level passes: this runs for every label
        record; a joined entry written before entries kept their model gives a float)."""
        models: set[Any] = set(filter(None, map(self.claims.get, ids)))
        rest: Iterable[str] = ids
        for table in (self.state.entries["p"], self.state.entries["x"], self.state.entries["d"]):
            # an id is held in one table at most: look up only those not found yet (labels
            # mostly find their prediction pending; every lookup into a large table costs)
            rest = list(rest)
            found = list(map(table.get, rest))
            models.update(map(_FIRST, filter(None, found)))
            rest = compress(rest, map(not_, found))
        return models

    def _new_ids(self, ids: Sequence[str]) -> bool:
        """Whether ``ids`` are distinct and none is held here or claimed by the batch: one
        C-level set pass per table (``keys().isdisjoint`` walks the smaller side), the
        common case of a prediction record, which then needs no owner looked up."""
        unique = set(ids)
        if len(unique) != len(ids):
            return False
        entries = self.state.entries
        return all(table.keys().isdisjoint(unique) for table in (entries["p"], entries["d"], entries["x"], self.claims))

    def _bad(self, role: str, ids: Sequence[str], models: Sequence[Any]) -> dict[int, str]:
        """Row -> message of the rows that break identity."""
        bad: dict[int, str] = {}
        if role != "predictions":
            if not any(models):  # no label names a model: nothing to check
                return bad
            named = set(models) - {None}
            if len(named) == 1 and {m for m in self._owner_models(ids) if isinstance(m, str)} <= named:
                return bad  # the common case: every label's prediction is the model they name
        elif len(set(models)) == 1 and self._new_ids(ids):
            waiting = self.state.entries["l"]
            # the common case: one model, new ids, and no label that came first names another
            if waiting.keys().isdisjoint(ids) or not any(
                    waiting[pid][1] not in (None, models[0]) for pid in filter(waiting.__contains__, ids)):
                self.claims.update(zip(ids, models))
                return bad
        owners = self._owners(ids)
        if role == "predictions":
            waiting = self.state.entries["l"]
            for i, (pid, model) in enumerate(zip(ids, models)):
                owner = owners.get(pid, self.claims.get(pid))
                if owner is None:
                    self.claims[pid] = model
                    label = waiting.get(pid)
                    if label is not None and label[1] is not None and label[1] != model:
                        self.refused_labels[pid] = label
                elif owner != model:
                    bad[i] = (f"predictions: prediction_id {pid!r} already belongs to a prediction of model "
                              f"{owner!r} in this partition; ids must be unique across models")
            return bad
        for i, (pid, model) in enumerate(zip(ids, models)):
            owner = owners.get(pid)
            if model is not None and owner is not None and owner != model:
                bad[i] = f"ground-truth: the label names model {model!r}, its prediction {pid!r} is model {owner!r}'s"
        return bad

    def screen_columns(self, columns: Mapping[str, Any], role: str) -> tuple[dict[str, Any] | None, list[RecordError]]:
        """``columns`` less the rows that break identity (``None`` when none is left), and an
        error per row left out."""
        bad = self._bad(role, columns["prediction_id"], columns["model_id"])
        if not bad:
            return dict(columns), []
        kept, rows = drop_rows(columns, sorted(bad), role)
        reason = PREDICTION_ID_CONFLICT if role == "predictions" else MODEL_MISMATCH
        return kept, [RecordError(i, reason, bad[i], codec.dumps(row)) for i, row in zip(sorted(bad), rows)]

    def screen_events(
        self, oks: Sequence[tuple[int | None, dict[str, Any]]], role: str
    ) -> tuple[list[tuple[int | None, dict[str, Any]]], list[RecordError]]:
        """``oks`` (validated ``(index, event)``) less those that break identity."""
        bad = self._bad(role, [e["prediction_id"] for _, e in oks], [e["model_id"] for _, e in oks])
        if not bad:
            return list(oks), []
        reason = PREDICTION_ID_CONFLICT if role == "predictions" else MODEL_MISMATCH
        errors = [RecordError(oks[i][0], reason, message, codec.dumps(oks[i][1])) for i, message in sorted(bad.items())]
        return [ok for i, ok in enumerate(oks) if i not in bad], errors

    def screen_records(
        self, records: Sequence[Sequence[tuple[int | None, dict[str, Any]]]], role: str
    ) -> dict[int, tuple[list[tuple[int | None, dict[str, Any]]], list[RecordError]]]:
        """:meth:`screen_events` of each of ``records`` (each a record's validated events,
        in log order), in one pass over all of them: the checks cost about the same for
        one event as for a thousand, and a foreign producer sends one event per record.
        The same outcome as screening the records one by one in order (the checks already
        take a batch's events in order, each against those before it). Only the records
        that lose events are in the answer (position -> kept events, errors): the others
        stand as they are, and a batch of one-event records allocates nothing for them."""
        flat = [event for oks in records for _, event in oks]
        bad = self._bad(role, [e["prediction_id"] for e in flat], [e["model_id"] for e in flat])
        if not bad:
            return {}
        reason = PREDICTION_ID_CONFLICT if role == "predictions" else MODEL_MISMATCH
        starts = list(accumulate((len(oks) for oks in records), initial=0))
        out: dict[int, tuple[list[tuple[int | None, dict[str, Any]]], list[RecordError]]] = {}
        for k in sorted({bisect_right(starts, i) - 1 for i in bad}):
            oks, first = records[k], starts[k]
            mine = {i - first: bad[i] for i in range(first, first + len(oks)) if i in bad}
            out[k] = ([ok for i, ok in enumerate(oks) if i not in mine],
                      [RecordError(oks[i][0], reason, message, codec.dumps(oks[i][1])) for i, message in sorted(mine.items())])
        return out

def refused_label_error(pid: str, entry: Any, prediction_model: str) -> RecordError:
    """The dead-letter error of a waiting label refused when its prediction came."""
    label, model, ts = entry[0], entry[1], entry[2]
    raw = codec.dumps({"prediction_id": pid, "label": label, "timestamp": ts, "model_id": model})
    return RecordError(None, MODEL_MISMATCH, f"ground-truth: the label names model {model!r}, its prediction {pid!r} "
                       f"(which came after it) is model {prediction_model!r}'s", raw)


__all__ = ["IdentityScreen", "MODEL_MISMATCH", "PREDICTION_ID_CONFLICT", "refused_label_error"]
