"""ViT traffic simulator: a real small Vision Transformer driven through scripted incidents."""
