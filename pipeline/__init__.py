"""Kubeflow: the stages as one pipeline (`pipeline.pipeline`), its steps (`pipeline.components`), its
configuration from params.yaml (`pipeline.params`) and `mol pipeline {compile,run-local,submit}`
(`pipeline.cli`). See docs/orchestration.md."""
