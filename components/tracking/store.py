"""The first contact with a tracking store: a server that is down, slow, or not an MLflow server becomes
one line within seconds, saying which it is, and never showing the URI's password.

MLflow's own default for an HTTP store is 7 retries with exponential back-off and a 120 s timeout per
request: about 4 minutes before a traceback. The first request of a stage (and a model download by `mol
predict`) retries once with a 10 s timeout instead, unless the user set MLFLOW_HTTP_REQUEST_MAX_RETRIES or
MLFLOW_HTTP_REQUEST_TIMEOUT; later calls keep MLflow's patient retries, which ride out a server restart.
"""
from __future__ import annotations

import contextlib
import os
import re
from typing import Iterator

from components.errors import UserError, redact

FIRST_CONTACT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def check_store(uri: str, client=None) -> None:
    """One quick request to an HTTP tracking server; a server that is down, slow or not an MLflow server
    becomes one UserError within seconds. Local stores (sqlite, files) need no check."""
    if not uri.lower().startswith(("http://", "https://")):
        return
    if client is None:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri)
    with fail_fast():
        try:
            client.search_experiments(max_results=1)
        except Exception as e:  # MLflow wraps connection errors, HTTP errors and bad replies alike
            raise store_error(e, uri) from None


@contextlib.contextmanager
def fail_fast() -> Iterator[None]:
    """MLflow HTTP requests inside the block retry once with a short timeout (unless the user set those)."""
    saved = {name: os.environ.get(name) for name in FIRST_CONTACT}
    os.environ.update({name: value for name, value in FIRST_CONTACT.items() if saved[name] is None})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)


def store_error(error: Exception, uri: str) -> UserError:
    """A failed request to the tracking store as one line that says which failure it was."""
    text = " ".join(str(getattr(error, "message", error)).split())
    where = redact(uri)
    code = re.search(r"error code (\d{3})", text)
    if "failed with exception" in text or "Max retries exceeded" in text or "timed out" in text.lower():
        reason = re.search(r"(Connection refused|Name or service not known|timed out|NameResolutionError|"
                           r"Connection reset|Temporary failure in name resolution)", text)
        return UserError(f"the MLflow tracking server {where} is unreachable ({reason[0] if reason else 'no answer'}); "
                         "start it or fix MLFLOW_TRACKING_URI, or pass --no-mlflow (MOL_TRACKING=off)")
    if getattr(error, "error_code", "") in ("UNAUTHENTICATED", "PERMISSION_DENIED") or (code and code[1] in ("401", "403")):
        return UserError(f"the MLflow tracking server {where} refused the credentials; check the user and password "
                         "(MLFLOW_TRACKING_USERNAME/PASSWORD or the URI)")
    if code:
        return UserError(f"{where} answered HTTP {code[1]} to an MLflow API request: it is not an MLflow tracking "
                         "server, or not at that path; fix MLFLOW_TRACKING_URI, or pass --no-mlflow")
    return UserError(f"the MLflow tracking store {where} failed: {redact(text)[:300]}")
