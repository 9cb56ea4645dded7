"""Measuring trackers: the benchmark runs (``python -m tracker.evaluate``, ``python -m tracker.bench``), the
absence benchmark's splicing, the OTB metrics, the plots and the peer trackers they are measured against. The
tracking library (``tracker``) never imports this package."""
