"""The amenability method (seed 004): Algorithm 1's engine, the run, rewards, learners, credit, evaluation, the run's acceptance."""
