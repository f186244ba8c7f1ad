"""Masking the secret values of running actions in what scripts send back and in log records.

Log records also pass the one masking rule for text (app.masking.mask_text): a connection string's
password is masked in a log line even when no running action holds it (a row read back, an
operator's input quoted in an error)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from app.masking import MASK, mask_text


def redact(value: Any, secrets: list[str]) -> Any:
    """Replace any secret value that a script echoed back."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    return value


class SecretRedactor(logging.Filter):
    """A log filter that masks the secrets of the actions running in this process (defence in depth)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: dict[str, int] = {}

    def hold(self, secrets: list[str]) -> None:
        with self._lock:
            for secret in filter(None, secrets):
                self._secrets[secret] = self._secrets.get(secret, 0) + 1

    def release(self, secrets: list[str]) -> None:
        with self._lock:
            for secret in filter(None, secrets):
                if self._secrets.get(secret, 0) <= 1:
                    self._secrets.pop(secret, None)
                else:
                    self._secrets[secret] -= 1

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = list(self._secrets)
        message = record.getMessage()
        masked = mask_text(redact(message, secrets))
        if masked != message:
            record.msg, record.args = masked, None
        _redact_traceback(record, secrets)
        return True


def _redact_traceback(record: logging.LogRecord, secrets: list[str]) -> None:
    """An exception's text (log.exception) and a stack dump may quote a secret too: format them
    here, masked, so the handler's formatter prints the masked copy."""
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask_text(redact(record.exc_text, secrets))
    if record.stack_info:
        record.stack_info = mask_text(redact(record.stack_info, secrets))


REDACTOR = SecretRedactor()
NOISY_LOGGERS = ("pypsrp", "psrpcore", "spnego", "requests_credssp", "urllib3")


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Attach the redactor to every handler of `logger` (root by default); protocol dumps stay at INFO."""
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if REDACTOR not in handler.filters:
            handler.addFilter(REDACTOR)
    for name in NOISY_LOGGERS:
        noisy = logging.getLogger(name)
        if noisy.getEffectiveLevel() < logging.INFO:
            noisy.setLevel(logging.INFO)
