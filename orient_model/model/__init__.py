"""The model: architectures, data, training, calibration, registry, prediction, evidence."""
