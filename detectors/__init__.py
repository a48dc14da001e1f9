"""Drift detectors and rolling performance metrics: a pure library (no Kafka).

- :mod:`detectors.base`: the ``Detector`` contract (update, update_many, flags, statistic,
  threshold and direction, reset, to_state/from_state).
- One detector per module: error-stream detectors (``adwin``, ``ddm``, ``eddm``, ``hddm_a``,
  ``hddm_w``, ``page_hinkley``, ``kswin``), reference-based feature detectors (``psi``,
  ``psi_categorical``, ``ks``, ``wasserstein``, ``chi2``, ``mean_shift``) and metric-stream
  detectors (``three_sigma``, ``threshold``).
- :mod:`detectors.metrics`: rolling classification, regression, ranking, latency and
  confidence metrics.
- :mod:`detectors.registry`: build by name from config dicts, restore from state.
- :mod:`detectors.severity`, :mod:`detectors.calibration`, :mod:`detectors.multiple_testing`:
  severity bands, threshold calibration for a target run length, family-wise error control.
"""
