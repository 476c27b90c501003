// Cost of reading a device through the FFI bindings, against the driver test double
// (run `deno task build:fake-gpu` first): what the VRAM monitor pays per poll, minus
// the real driver's own time.
import { openNvml } from "../ffi/nvml.ts";
import { FAKE_GPU_NOV2_PATH, FakeGpu, GiB } from "../tests/fake_gpu.ts";

const gpu = new FakeGpu({ isolate: true });
gpu.setTotal(0, 80 * GiB);
gpu.setOtherUsed(0, 10 * GiB);
gpu.setUtilization(0, 55, 30);
gpu.setTemperature(0, 64);
for (let i = 0; i < 4; i++) gpu.addProcess(0, 1000 + i, GiB);
const nvml = openNvml(gpu.path);
const device = nvml.device(0);

const gpuV1 = new FakeGpu({ path: FAKE_GPU_NOV2_PATH, isolate: true });
const nvmlV1 = openNvml(gpuV1.path);
const deviceV1 = nvmlV1.device(0);

globalThis.addEventListener("unload", () => {
  nvml.close();
  nvmlV1.close();
  gpu.close();
  gpuV1.close();
});

Deno.bench("nvml - full device snapshot (memory, utilization, temperature, 4 processes)", () => {
  device.memory();
  device.utilization();
  device.temperatureC();
  device.computeProcesses();
});

Deno.bench("nvml - nvmlDeviceGetMemoryInfo_v2 alone", () => {
  device.memory();
});

Deno.bench("nvml - nvmlDeviceGetMemoryInfo (v1) alone", () => {
  deviceV1.memory();
});
