"""How different two frames of a sweep are, as auto-capture compares them (usqa/service/live/captures.py)."""
