"""Experiment tracking of a whole run (``tracking:`` in the configuration): per round the ratings, Bradley-Terry
scores, pairs kept and dropped, judge failures, DPO metrics per member and stage wall times, and ``sparta eval``'s
scores, written to TensorBoard, Weights & Biases, MLflow or Trackio with each library's own writer.

    tracker.py      the round loop's observer and the ``sparta eval`` hook
    metrics.py      what is logged, read from the run directory
    ledger.py       tracking/tracking.json: what each tracker has been given (no step twice on resume)
    writers.py      the writer contract and registry; *_writer.py: one per library
"""
