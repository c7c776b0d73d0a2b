"""Open311 GeoReport v2 at /open311/v2: city apps and hotlines file and follow tickets."""
