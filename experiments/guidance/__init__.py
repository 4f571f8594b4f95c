"""What the shipped model's pass line calls frames of a degraded sweep and of the demo cine."""
