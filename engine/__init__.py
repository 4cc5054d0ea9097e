"""rn50tui's headless training engine: NVIDIA's NGC ResNet-50 v1.5 recipe on MLU, CUDA and CPU."""
