"""Jobs of the venues domain (queue `venues`)."""

from __future__ import annotations

from api.core.jobs import Job

QUEUE = "venues"


def offer_next(activity_id: int) -> Job:
    """Offer every free seat of the activity to the next people on its waitlist."""
    return Job("venues.offer_next", QUEUE, {"activity_id": activity_id})


def expire_offer(sign_up_id: int, delay_ms: int) -> Job:
    """Lapse an offer nobody accepted; runs once the offer's time is up, then the seat moves on."""
    return Job("venues.expire_offer", QUEUE, {"sign_up_id": sign_up_id}, delay_ms=max(delay_ms, 0))


def send_reminders(activity_id: int) -> Job:
    """Remind everyone with a place, the day before."""
    return Job("venues.send_reminders", QUEUE, {"activity_id": activity_id})


def close_attendance(activity_id: int) -> Job:
    """After the activity: confirmed sign-ups that never checked in become no-shows."""
    return Job("venues.close_attendance", QUEUE, {"activity_id": activity_id})


def activity_cancelled(activity_id: int) -> Job:
    """Tell everyone who was signed up that the organiser called the activity off."""
    return Job("venues.activity_cancelled", "notifications", {"activity_id": activity_id})


def scan(period_key: str) -> Job:
    """The periodic sweep: reminders, no-shows, lapsed offers and seats left free."""
    return Job("venues.scan", QUEUE, {"period_key": period_key})
