"""Facts about a classifier as a `torch.nn.Module`, whatever its architecture."""
