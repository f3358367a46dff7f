"""The device choice shared by the PyTorch twins of the benches (scripts/bench_torch_*.py).

`pick("auto" | "cpu" | "cuda")` returns (device, sync, description). On CUDA it turns
TF32 off for matrix products and convolutions, so that PyTorch does the same f32
arithmetic as dfd's kernels (PyTorch's default lets cuDNN convolutions use TF32).
"""
import torch


def pick(name="auto"):
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        desc = f"torch {torch.__version__} on CUDA, {torch.cuda.get_device_name(dev)}, f32 (TF32 off)"
        return dev, torch.cuda.synchronize, desc
    desc = f"torch {torch.__version__} on CPU, {torch.get_num_threads()} threads"
    return dev, (lambda: None), desc
