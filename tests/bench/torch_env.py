# What PyTorch runs in the environment it is given (tests/bench/environment.ts spawns it with the
# machine's own environment, as the references): its version and threads, its build's BLAS and
# oneDNN (torch.__config__.show()), the OpenBLAS library it has mapped and the core type that library
# chose (openblas_get_corename through ctypes), and the ISA and implementation oneDNN reports for one
# convolution (ONEDNN_VERBOSE=1, set here before torch loads; the verbose lines are caught on fd 1).
# Prints one JSON object, last, on stdout. Run with Debian's interpreter: /usr/bin/python3.
import ctypes
import json
import os
import re
import sys
import tempfile

PINS = ("OPENBLAS_", "GOTO", "ONEDNN_", "DNNL_", "OMP_", "MKL_")
env = {k: v for k, v in os.environ.items() if k.startswith(PINS)}
os.environ["ONEDNN_VERBOSE"] = "1"  # read at oneDNN's first primitive
os.environ["DNNL_VERBOSE"] = "1"

import torch  # noqa: E402

libc = ctypes.CDLL(None)


def config():
    out = {}
    for line in torch.__config__.show().splitlines():
        line = line.strip(" -")
        if line.startswith("CPU capability usage:"):
            out["CPU capability usage"] = line.split(":", 1)[1].strip()
        m = re.match(r".*(oneDNN|MKL-DNN|Deep Neural Network Library).*?(v[\d.]+)", line)
        if m:
            out["oneDNN"] = f"oneDNN {m.group(2)}"
        for item in line.split(", "):
            k, _, v = item.partition("=")
            k = k.split(":")[-1]  # "Build settings: BLAS_INFO=generic"
            if k.strip() in ("BLAS_INFO", "LAPACK_INFO", "USE_MKLDNN", "USE_OPENMP"):
                out[k.strip()] = v.strip()
    return out


def openblas():
    """The first mapped library that exports openblas_get_corename (after a matmul has loaded BLAS)."""
    seen = []
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if ".so" in path and path not in seen:
                seen.append(path)
    name = lambda p: os.path.basename(p).lower()  # noqa: E731
    # The OpenBLAS library itself first (torch's libblas.so.3 resolves to it), then anything exporting it.
    for path in sorted(seen, key=lambda p: ("openblas" not in name(p), "blas" not in name(p))):
        try:
            lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
            core = lib.openblas_get_corename
        except (OSError, AttributeError):
            continue
        core.restype = lib.openblas_get_config.restype = ctypes.c_char_p
        return {
            "path": path,
            "corename": core().decode(),
            "config": lib.openblas_get_config().decode().strip(),
            "threads": lib.openblas_get_num_threads(),
        }
    return None


def onednn_verbose():
    """oneDNN's verbose lines for one training-mode convolution, caught on fd 1."""
    sys.stdout.flush()
    libc.fflush(None)
    saved = os.dup(1)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            conv = torch.nn.Conv2d(64, 64, 3, 1, 1)
            conv(torch.randn(32, 64, 16, 16)).sum().backward()
            libc.fflush(None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        lines = tmp.read().decode(errors="replace").splitlines()
    out = {"isa": None, "impl": None, "version": None}
    for line in lines:
        f = line.split(",")
        if len(f) < 3 or not f[0].endswith("_verbose"):
            continue
        if f[1] == "info" and f[2].startswith("oneDNN"):
            out["version"] = f[2].split(" (")[0]
        elif f[1] == "info" and len(f) > 3 and f[3].startswith("isa:"):
            out["isa"] = ",".join(f[3:])[4:]  # "Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions"
        elif f[1] == "exec" and len(f) > 4 and f[3] == "convolution" and out["impl"] is None:
            out["impl"] = f[4]
    return out


torch.randn(256, 256) @ torch.randn(256, 256)  # loads and initialises the BLAS
onednn = onednn_verbose() if torch.backends.mkldnn.is_available() else {"isa": None, "impl": None, "version": None}
print(json.dumps({
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "mkldnn": torch.backends.mkldnn.is_available(),
    "config": config(),
    "openblas": openblas(),
    "onednn": onednn,
    "env": env,
}), flush=True)
