"""The demo region: a county, its hospitals and clinics, and a year of history."""
