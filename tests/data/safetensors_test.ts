// safetensors: our writer and reader agree, and numpy (without our code) reads our
// files and writes files we read, byte for byte.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  type Tensor,
  writeSafetensors,
} from "../../data/safetensors.ts";

const TENSORS: Record<string, Tensor> = {
  "conv1.weight": { dtype: "F32", shape: [2, 3], data: new Float32Array([0.5, -1.25, 3e-8, Math.PI, -0, 1e30]) },
  "bn.running_var": { dtype: "F64", shape: [], data: new Float64Array([0.1]) },
  "labels": { dtype: "U8", shape: [4], data: new Uint8Array([0, 9, 3, 255]) },
  "steps": { dtype: "I64", shape: [2], data: new BigInt64Array([-3n, 1n << 40n]) },
  "empty": { dtype: "I32", shape: [0, 5], data: new Int32Array(0) },
};
const META = { format: "pt", stage: "train-cnn" };

const python = new Deno.Command("python3", { args: ["-c", "import numpy"], stdout: "null", stderr: "null" })
  .output().then((o) => o.success).catch(() => false);

Deno.test("safetensors: round trip, 8-byte aligned data, metadata", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "w.safetensors");
  await writeSafetensors(path, TENSORS, META);
  const bytes = await Deno.readFile(path);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0, "the data starts 8-byte aligned");
  const back = await readSafetensors(path);
  assert.deepEqual(back.metadata, META);
  assert.deepEqual(back.tensors, TENSORS);
  assert.deepEqual(encodeSafetensors(back.tensors, back.metadata), bytes, "the same bytes again");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("safetensors: bad input is refused, with why", () => {
  assert.throws(
    () => encodeSafetensors({ x: { dtype: "F32", shape: [2, 2], data: new Float32Array(3) } }),
    /shape \[2,2\] does not hold 3 values/,
  );
  assert.throws(
    () => encodeSafetensors({ x: { dtype: "F32", shape: [1], data: new Float64Array(1) } }),
    /Float32Array/,
  );
  const good = encodeSafetensors({ x: { dtype: "U8", shape: [4], data: new Uint8Array(4) } });
  assert.throws(() => decodeSafetensors(good.subarray(0, good.length - 1)), /out of range/);
  assert.throws(() => decodeSafetensors(new Uint8Array([255, 255, 0, 0, 0, 0, 0, 0])), /runs past the end/);
  const extra = new Uint8Array(good.length + 1);
  extra.set(good);
  assert.throws(() => decodeSafetensors(extra), /1 bytes after the last tensor/);
});

Deno.test({
  name: "safetensors: numpy reads our file and writes one we read (no safetensors library on either side)",
  ignore: !(await python),
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const ours = join(dir, "ours.safetensors");
    const theirs = join(dir, "theirs.safetensors");
    await writeSafetensors(ours, TENSORS, META);
    const script = `
import json, struct, sys
import numpy as np
DT = {"F32": "<f4", "F64": "<f8", "U8": "u1", "I64": "<i8", "I32": "<i4"}
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
out = {"__metadata__": header.pop("__metadata__")}
for name, t in header.items():
    b, e = t["data_offsets"]
    a = np.frombuffer(data[b:e], dtype=DT[t["dtype"]]).reshape(t["shape"])
    out[name] = {"dtype": t["dtype"], "shape": list(a.shape), "values": [v if isinstance(v, float) else str(v) for v in a.ravel().tolist()]}
print(json.dumps(out))
# And write one by hand, in another order, unpadded, as another tool might.
w = np.arange(12, dtype="<f4").reshape(3, 4) / 7
ids = np.array([[1, -2], [3, -4]], dtype="<i8")
blobs = [("ids", "I64", ids), ("w", "F32", w)]
hdr, off = {"__metadata__": {"by": "numpy"}}, 0
for name, dt, a in blobs:
    hdr[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
    off += a.nbytes
h = json.dumps(hdr).encode()
with open(sys.argv[2], "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(a.tobytes() for _, _, a in blobs))
`;
    const out = await new Deno.Command("python3", { args: ["-c", script, ours, theirs], stderr: "inherit" }).output();
    assert.ok(out.success, "python3 ran");
    const seen = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.deepEqual(seen.__metadata__, META);
    for (const [name, t] of Object.entries(TENSORS)) {
      assert.equal(seen[name].dtype, t.dtype);
      assert.deepEqual(seen[name].shape, t.shape, name);
      // Floats cross as JSON numbers (exact for float64, and float32 widens exactly), integers as strings.
      const values = [...t.data].map((v) => (t.dtype === "F32" || t.dtype === "F64" ? v : String(v)));
      assert.deepEqual(seen[name].values, values, name);
    }
    const back = await readSafetensors(theirs);
    assert.deepEqual(back.metadata, { by: "numpy" });
    assert.deepEqual(back.tensors.ids, { dtype: "I64", shape: [2, 2], data: new BigInt64Array([1n, -2n, 3n, -4n]) });
    assert.deepEqual(back.tensors.w.shape, [3, 4]);
    assert.deepEqual(back.tensors.w.data, Float32Array.from({ length: 12 }, (_, i) => i / 7));
    await Deno.remove(dir, { recursive: true });
  },
});
