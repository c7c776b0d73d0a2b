"""Community notices (公告): announcements to an audience by compound, building or tag, with read receipts."""
