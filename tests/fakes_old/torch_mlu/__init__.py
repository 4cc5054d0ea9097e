"""A stand-in for the torch 1.6 generation of torch_mlu: it registers no `torch.mlu`."""
