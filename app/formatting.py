"""How numbers read on pages and in exports: one place, so a duration is never shown as
"3.9000000000000012 s"."""

from __future__ import annotations

import math

from flask import Flask

from app.masking import mask

NO_VALUE = "\u2013"  # an en dash, as the templates show a missing value


def duration(seconds: float | int | str | None) -> str:
    """Seconds for a person: tenths under 10 s ("3.9 s", a quick check is not "0 s"), whole
    seconds under a minute ("42 s"), then minutes and seconds ("2 min 5 s"), hours past 60 min
    ("1 h 2 min"). None, or anything that is not a number, reads as a dash."""
    try:
        value = float(seconds)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return NO_VALUE
    if math.isnan(value) or math.isinf(value):
        return NO_VALUE
    value = max(value, 0.0)
    if round(value, 1) < 10:
        return f"{round(value, 1):.1f} s"
    whole = round(value)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def register_filters(app: Flask) -> None:
    """The Jinja filters every template may use: `duration`, and `masked` (app.masking's one
    rule, for what a page shows of a database row straight: an outcome, an error message, even
    one written before the rule masked it at write)."""
    app.add_template_filter(duration, "duration")
    app.add_template_filter(mask, "masked")
