"""One router per endpoint group; each function serves its own group."""
