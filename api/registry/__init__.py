"""Registry: communities, compounds, buildings, households, residents, tags and consent."""
