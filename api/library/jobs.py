"""Jobs of the library domain: notices about loans and holds, and the periodic scans."""

from __future__ import annotations

from api.core.jobs import Job

QUEUE = "library"
DUE_SOON = "due_soon"
OVERDUE_STAGES = (1, 7, 30)  # days overdue at which a notice goes out
HOLD_READY = "hold_ready"
HOLD_EXPIRED = "hold_expired"


def overdue_stage(days: int) -> str:
    return f"overdue_{days}"


def due_soon_stage(renewals: int) -> str:
    """One due-soon reminder per due date: a renewed loan is reminded again."""
    return f"{DUE_SOON}_{renewals}"


def loan_notice(loan_id: int, stage: str) -> Job:
    """Tell the reader about a loan (due soon, overdue at a stage)."""
    return Job("library.loan_notice", "notifications", {"loan_id": loan_id, "stage": stage})


def hold_notice(hold_id: int, stage: str) -> Job:
    """Tell the reader about a hold (ready to collect, expired)."""
    return Job("library.hold_notice", "notifications", {"hold_id": hold_id, "stage": stage})


def scan(period_key: str) -> Job:
    """Find loans and holds that need a notice, and expire uncollected holds."""
    return Job("library.scan", QUEUE, {"period_key": period_key})


def anonymise(period_key: str) -> Job:
    """Unlink old loan history from readers."""
    return Job("library.anonymise", QUEUE, {"period_key": period_key})
