"""The Hugging Face backend: a pool of LoRA members over shared base models, batched generation, judges, DPO.

Importing this package is cheap; torch and transformers load with the modules that need them.
"""
