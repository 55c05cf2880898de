"""Bad input with a fixed budget: every target counts its cases (see docs/testing.md)."""
