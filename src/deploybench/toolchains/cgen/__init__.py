"""cgen: ONNX (and scikit-learn tree ensembles) to portable C for microcontrollers."""
