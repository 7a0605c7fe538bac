"""Fine-tuning a pretrained vision-language model with LoRA / QLoRA adapters (notebooks/finetune.ipynb)."""
