"""Experiment trackers (MLflow, TensorBoard, W&B): one interface, backends registered by
name (base.py); a phase opens them through session.py."""
