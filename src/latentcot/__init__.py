"""latentcot: train language models to reason in latent space (Coconut, Token Assorted) and inspect them."""

__version__ = "0.1.0"
