"""What the score drift index reads on the model's own distribution and on another anatomy."""
