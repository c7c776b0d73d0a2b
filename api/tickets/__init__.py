"""Tickets: 随手拍 reports and 报事报修 repairs, one workflow, dispatched, timed and answered."""
