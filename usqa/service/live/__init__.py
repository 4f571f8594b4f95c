"""Live scanning: guidance with hysteresis, score drift, stream sessions and the reference stream client."""
