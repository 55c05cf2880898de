"""Floor 4: the Reflex portal. Pages and UI state; talks to integration only."""
