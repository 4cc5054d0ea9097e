"""The old API's entry point (`import torch_mlu.core.mlu_model as ct`)."""
