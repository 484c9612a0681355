"""Serving a trained run: the Recommender, the recommend CLI's batch mode and the demo page."""
