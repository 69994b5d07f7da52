"""The contract between the operator and the trainer: the spec sections the trainer reads,
each field declared once with its type, default, bounds and description (sections.py), and
the declarations only the CRD needs beside them (schema.py). The operator's API
(rloop_operator.api) and the trainer's phase configs (rloop_trainer.config) are built from
these sections; the CRD is generated from the API (hack/generate_api.py).
"""
