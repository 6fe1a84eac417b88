"""Loading model files safely, the predictor, metrics, the evaluate and predict stages, user pictures."""
