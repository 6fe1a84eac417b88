"""Device and precision selection and the environment record, shared by training and inference."""
