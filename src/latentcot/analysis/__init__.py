"""What the latent reasoning does: ProsQA path analysis, latent-search probing, reports."""
