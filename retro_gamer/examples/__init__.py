"""Small games that ship with retro-gamer, used by the documentation."""
