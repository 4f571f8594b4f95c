"""Adaptation: a published version continued on a new site's few labelled frames, gated against the champion."""
