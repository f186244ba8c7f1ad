"""Driving the wizard's screens in Chromium: numbered screenshots, filling a step's form, running
a step with the lab's WinRM credentials and waiting for the attempt's end."""

import re

from tests.execution.harness import LAB_PASSWORD, LAB_USER


class Screens:
    """`shots(name)`: a numbered full-page screenshot of `page` in `folder` (emptied first)."""

    def __init__(self, page, folder) -> None:
        self.page, self.count, self.folder = page, 0, folder
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()

    def __call__(self, name: str) -> None:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)


def run_and_wait(page, expect, status: str = "succeeded") -> None:
    """Enter the lab credentials, press Run, wait for the page to show the attempt's end."""
    panel = page.locator("#run-panel")
    panel.get_by_label("WinRM user").fill(LAB_USER)
    panel.get_by_label("Password").fill(LAB_PASSWORD)
    panel.get_by_role("button", name=re.compile(r"^Run")).click()
    wait_status(page, expect, status)


def wait_status(page, expect, status: str) -> None:
    """Wait until the run box shows `status` and the live view is connected again."""
    # The live view reloads the page once when the step ends; the run box then carries the status.
    expect(page.locator(f".run-status[data-run-status='{status}']")).to_be_visible(timeout=60_000)
    expect(page.locator("[data-conn]")).not_to_have_text("connecting…", timeout=10_000)


def fill(page, values: dict) -> None:
    """Fill form controls by their exact label; a bool ticks or clears a checkbox."""
    for label, value in values.items():
        control = page.get_by_label(label, exact=True)
        if isinstance(value, bool):
            control.set_checked(value)
        else:
            control.fill(str(value))
