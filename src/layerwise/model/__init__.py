"""The models: loading (models), fine-tuning (prepared, trainer, finetune) and tiny test models
(testing). Imports measure (its stats), inputs and core."""
