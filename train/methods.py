"""The one list of fine-tuning methods, by name: the CLI's choices and help come from it, losses implement it."""

LOSSES = {
    "proreg": "ProReg: CE plus KL to the zero-shot teacher, mixed per sample by an adaptive weight",
    "kd": "CE plus KL to the zero-shot teacher with a fixed trade-off (--kd-alpha)",
    "ce": "conventional fine-tuning: cross-entropy only",
}
